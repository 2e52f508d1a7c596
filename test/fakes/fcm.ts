import { randomBytes, type KeyObject } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';

/**
 * FCM HTTP v1 and Google's OAuth2 token endpoint on 127.0.0.1 (specs/providers.md §6).
 *
 * POST /token takes the JWT bearer grant: an RS256 assertion from a known service account,
 * verified against its public key, with `kid` its private_key_id, `aud` this endpoint, a
 * messaging scope and `exp - iat` ≤ 3600 s; it answers an access token or `invalid_grant`.
 * POST /v1/projects/<id>/messages:send wants one of those tokens as Bearer, the right project,
 * and a message with exactly one target, string-only data under the size limits; it answers
 * `{"name": …}` or FCM's error envelope, including scripted errors for a token or topic.
 */

export interface FakeServiceAccount {
  clientEmail: string;
  privateKeyId: string;
  publicKey: KeyObject;
  /** Lifetime of the access tokens it is given (FCM's is 3599 s). */
  expiresIn?: number;
}

export interface FcmGrant {
  clientEmail?: string;
  at: number;
  status: number;
  error?: string;
}

export interface FcmSend {
  /** The message's token or topic. */
  target?: string;
  headers: IncomingHttpHeaders;
  message?: Record<string, any>;
  at: number;
  status: number;
  errorCode?: string;
}

/** A scripted FCM error: HTTP status, google.rpc status, FcmError code, message, extra headers. */
export interface FcmReply {
  status: number;
  rpcStatus: string;
  errorCode?: string;
  message: string;
  headers?: Record<string, string>;
  /** A google.rpc.BadRequest field violation to add, e.g. message.token. */
  field?: string;
}

const GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const SCOPES = ['https://www.googleapis.com/auth/firebase.messaging', 'https://www.googleapis.com/auth/cloud-platform'];
const TOPIC = /^[a-zA-Z0-9\-_.~%]+$/;
const DURATION = /^\d+(\.\d{1,9})?s$/;

function errorBody(reply: FcmReply): string {
  const details: Record<string, unknown>[] = [];
  if (reply.errorCode) details.push({ '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode: reply.errorCode });
  if (reply.field) {
    details.push({ '@type': 'type.googleapis.com/google.rpc.BadRequest', fieldViolations: [{ field: reply.field, description: reply.message }] });
  }
  return JSON.stringify({ error: { code: reply.status, message: reply.message, status: reply.rpcStatus, ...(details.length ? { details } : {}) } });
}

const invalidArgument = (message: string, field?: string): FcmReply => ({
  status: 400,
  rpcStatus: 'INVALID_ARGUMENT',
  errorCode: 'INVALID_ARGUMENT',
  message,
  field,
});

export class FakeFcm {
  readonly grants: FcmGrant[] = [];
  readonly sends: FcmSend[] = [];
  private readonly tokens = new Map<string, number>();
  private readonly replies = new Map<string, FcmReply[]>();

  private constructor(
    private readonly server: Server,
    private readonly projectId: string,
    private readonly accounts: ReadonlyMap<string, FakeServiceAccount>,
    readonly url: string,
  ) {}

  get tokenUri(): string {
    return `${this.url}/token`;
  }

  static async start(projectId: string, accounts: FakeServiceAccount[]): Promise<FakeFcm> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const fake = new FakeFcm(server, projectId, new Map(accounts.map((a) => [a.clientEmail, a])), `http://127.0.0.1:${port}`);
    server.on('request', (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (req.method === 'POST' && req.url === '/token') void fake.handleToken(req.headers, body, res);
        else if (req.method === 'POST') fake.handleSend(req.url ?? '', req.headers, body, res);
        else res.writeHead(405).end();
      });
    });
    return fake;
  }

  /** The next sends to `target` (a token or topic) get these errors, in order; after them, success. */
  reply(target: string, ...replies: FcmReply[]): void {
    this.replies.set(target, [...(this.replies.get(target) ?? []), ...replies]);
  }

  /** Every access token issued so far stops working (401), as after a key rotation. */
  revokeTokens(): void {
    this.tokens.clear();
  }

  at(target: string): FcmSend[] {
    return this.sends.filter((s) => s.target === target);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async handleToken(headers: IncomingHttpHeaders, body: string, res: ServerResponse): Promise<void> {
    const grant: FcmGrant = { at: Date.now(), status: 200 };
    this.grants.push(grant);
    const refuse = (error: string, description: string) => {
      grant.status = 400;
      grant.error = error;
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error, error_description: description }));
    };
    if (headers['content-type'] !== 'application/x-www-form-urlencoded') return refuse('invalid_request', 'Bad content type');
    const form = new URLSearchParams(body);
    if (form.get('grant_type') !== GRANT_TYPE) return refuse('unsupported_grant_type', 'Invalid grant_type');
    const assertion = form.get('assertion') ?? '';
    let account: FakeServiceAccount | undefined;
    let claims;
    try {
      const header = decodeProtectedHeader(assertion);
      account = this.accounts.get(String(decodeJwt(assertion).iss));
      grant.clientEmail = account?.clientEmail;
      if (!account || (header.kid !== undefined && header.kid !== account.privateKeyId)) throw new Error('unknown key');
      ({ payload: claims } = await jwtVerify(assertion, account.publicKey, {
        algorithms: ['RS256'],
        issuer: account.clientEmail,
        audience: this.tokenUri,
        requiredClaims: ['iat', 'exp'],
      }));
    } catch {
      return refuse('invalid_grant', 'Invalid JWT Signature.');
    }
    if (claims.exp! - claims.iat! > 3600) return refuse('invalid_grant', 'Invalid JWT: Token must be a short-lived token (60 minutes)');
    const scopes = String(claims.scope ?? '').split(' ');
    if (!SCOPES.some((s) => scopes.includes(s))) return refuse('invalid_scope', 'Invalid OAuth scope or ID token audience provided.');
    const expiresIn = account.expiresIn ?? 3599;
    const token = `ya29.${randomBytes(24).toString('base64url')}`;
    this.tokens.set(token, Date.now() + expiresIn * 1000);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: token, expires_in: expiresIn, token_type: 'Bearer' }));
  }

  private handleSend(url: string, headers: IncomingHttpHeaders, body: string, res: ServerResponse): void {
    const send: FcmSend = { headers, at: Date.now(), status: 200 };
    this.sends.push(send);
    const answer = (reply: FcmReply) => {
      send.status = reply.status;
      send.errorCode = reply.errorCode ?? reply.rpcStatus;
      res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers }).end(errorBody(reply));
    };
    let message: Record<string, any> | undefined;
    try {
      message = JSON.parse(body).message;
    } catch {
      // Refused below, once auth has been checked.
    }
    // Recorded before any check, so a test sees every request made for its token or topic.
    send.message = message;
    send.target = message?.token ?? message?.topic ?? message?.condition;
    const path = /^\/v1\/projects\/([^/]+)\/messages:send$/.exec(url);
    if (!path) return answer({ status: 404, rpcStatus: 'NOT_FOUND', message: 'Not Found' });
    const bearer = /^Bearer (\S+)$/.exec(String(headers.authorization ?? ''))?.[1];
    const expiresAt = bearer ? this.tokens.get(bearer) : undefined;
    if (expiresAt === undefined || expiresAt < Date.now()) {
      return answer({
        status: 401,
        rpcStatus: 'UNAUTHENTICATED',
        message: 'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.',
      });
    }
    if (decodeURIComponent(path[1]!) !== this.projectId) {
      return answer({ status: 403, rpcStatus: 'PERMISSION_DENIED', message: `Permission 'cloudmessaging.messages.create' denied on resource '//cloudresourcemanager.googleapis.com/projects/${path[1]}' (or it may not exist).` });
    }
    if (!String(headers['content-type']).startsWith('application/json')) return answer(invalidArgument('Invalid JSON payload received.'));
    if (typeof message !== 'object' || message === null) return answer(invalidArgument('Invalid JSON payload received.'));
    const targets = ['token', 'topic', 'condition'].filter((k) => message[k] !== undefined);
    if (targets.length !== 1) return answer(invalidArgument('Exactly one of token, topic or condition must be specified.'));
    if (message.topic !== undefined && !TOPIC.test(message.topic)) return answer(invalidArgument('Invalid topic name.', 'message.topic'));
    const data = message.data ?? {};
    if (Object.values(data).some((v) => typeof v !== 'string')) {
      return answer(invalidArgument("Invalid value at 'message.data' (Map), values must be strings", 'message.data'));
    }
    const dataBytes = Object.entries(data).reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v as string), 0);
    if (dataBytes > (message.topic ? 2048 : 4096)) return answer(invalidArgument('Message is too big', 'message'));
    const n = message.notification;
    if (n !== undefined && (typeof n !== 'object' || Object.values(n).some((v) => typeof v !== 'string'))) {
      return answer(invalidArgument("Invalid value at 'message.notification'", 'message.notification'));
    }
    const ttl = message.android?.ttl;
    if (ttl !== undefined && !DURATION.test(String(ttl))) {
      return answer(invalidArgument(`Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration), Field 'ttl', Illegal duration format; duration must end with 's'`, 'message.android.ttl'));
    }
    const scripted = this.replies.get(send.target!)?.shift();
    if (scripted) return answer(scripted);
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({ name: `projects/${this.projectId}/messages/0:${Date.now()}%${randomBytes(8).toString('hex')}` }),
    );
  }
}
