import { randomUUID, type KeyObject } from 'node:crypto';
import { constants, createServer, type Http2Server, type Http2Session, type IncomingHttpHeaders } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { decodeProtectedHeader, jwtVerify } from 'jose';

/**
 * APNs on 127.0.0.1 over cleartext HTTP/2 (h2c; see parseHost in src/channels/apns.ts for why not
 * TLS). It checks each push as Apple does (specs/providers.md §5): POST to /3/device/<hex token>;
 * a bearer provider token that is an ES256 JWT with a known `kid`, the key's team as `iss`, an
 * `iat` under an hour old, verified against that key's public half; the same `kid` for the whole
 * connection; apns-topic, apns-push-type, apns-priority, apns-expiration, apns-collapse-id and
 * apns-id values; a JSON payload with an `aps` dictionary of at most 4 096 bytes. Refusals carry
 * Apple's JSON error body `{"reason": …}`.
 */

export interface FakeApnsKey {
  keyId: string;
  teamId: string;
  publicKey: KeyObject;
}

export interface ApnsPush {
  deviceToken: string;
  headers: IncomingHttpHeaders;
  payload?: Record<string, unknown>;
  jwt?: string;
  kid?: string;
  at: number;
  status: number;
  reason?: string;
}

/** A scripted answer: Apple's status and reason, a 410's timestamp, extra headers. */
export interface ApnsReply {
  status: number;
  reason?: string;
  timestamp?: number;
  headers?: Record<string, string>;
}

const PUSH_TYPES = new Set(['alert', 'background', 'location', 'voip', 'complication', 'fileprovider', 'mdm', 'liveactivity', 'pushtotalk']);
const PRIORITIES = new Set(['10', '5', '1']);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const MAX_PAYLOAD = 4096;
const TOKEN_MAX_AGE_S = 3600;

export class FakeApns {
  readonly pushes: ApnsPush[] = [];
  private readonly replies = new Map<string, ApnsReply[]>();
  private readonly expired = new Set<string>();
  private readonly sessionKid = new WeakMap<Http2Session, string>();
  private readonly sessionsByKid = new Map<string, number>();
  private readonly open = new Set<Http2Session>();

  private constructor(
    private readonly server: Http2Server,
    private readonly keys: ReadonlyMap<string, FakeApnsKey>,
    private readonly topics: ReadonlySet<string>,
    readonly url: string,
  ) {}

  static async start(keys: FakeApnsKey[], topics: string[]): Promise<FakeApns> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const fake = new FakeApns(server, new Map(keys.map((k) => [k.keyId, k])), new Set(topics), `http://127.0.0.1:${port}`);
    server.on('session', (session) => {
      fake.open.add(session);
      session.on('close', () => fake.open.delete(session));
    });
    server.on('stream', (stream, headers) => {
      // A client that resets its stream (a send timeout) is no error of the fake's.
      stream.on('error', () => undefined);
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        void fake.handle(stream.session!, headers, Buffer.concat(chunks)).then((reply) => {
          if (stream.destroyed) return;
          const body = reply.reason ? JSON.stringify({ reason: reply.reason, timestamp: reply.timestamp }) : undefined;
          stream.respond({
            ':status': reply.status,
            'apns-id': typeof headers['apns-id'] === 'string' ? headers['apns-id'] : randomUUID(),
            ...(body ? { 'content-type': 'application/json' } : {}),
            ...reply.headers,
          });
          stream.end(body);
        });
      });
    });
    return fake;
  }

  /** The next pushes to `deviceToken` get these answers, in order; after them, 200. */
  reply(deviceToken: string, ...replies: ApnsReply[]): void {
    this.replies.set(deviceToken, [...(this.replies.get(deviceToken) ?? []), ...replies]);
  }

  /** From now on every provider token seen so far is answered 403 ExpiredProviderToken. */
  expireTokensSeen(): void {
    for (const p of this.pushes) if (p.jwt) this.expired.add(p.jwt);
  }

  /** Connections opened by providers signing with `kid`. */
  connections(kid: string): number {
    return this.sessionsByKid.get(kid) ?? 0;
  }

  at(deviceToken: string): ApnsPush[] {
    return this.pushes.filter((p) => p.deviceToken === deviceToken);
  }

  /** Sends GOAWAY (with Apple's JSON reason) on every open connection and waits for them to close. */
  async goaway(reason = 'Shutdown'): Promise<void> {
    await Promise.all(
      [...this.open].map(
        (session) =>
          new Promise<void>((resolve) => {
            session.once('close', resolve);
            session.goaway(constants.NGHTTP2_NO_ERROR, undefined, Buffer.from(JSON.stringify({ reason })));
            session.close();
          }),
      ),
    );
  }

  async close(): Promise<void> {
    for (const session of this.open) session.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(session: Http2Session, headers: IncomingHttpHeaders, body: Buffer): Promise<ApnsReply> {
    const path = String(headers[':path']);
    const deviceToken = /^\/3\/device\/([0-9a-fA-F]*)$/.exec(path)?.[1] ?? '';
    const push: ApnsPush = { deviceToken, headers, at: Date.now(), status: 0 };
    this.pushes.push(push);
    const reply = await this.check(session, path, headers, body, push);
    push.status = reply.status;
    push.reason = reply.reason;
    return reply;
  }

  private async check(
    session: Http2Session,
    path: string,
    headers: IncomingHttpHeaders,
    body: Buffer,
    push: ApnsPush,
  ): Promise<ApnsReply> {
    if (headers[':method'] !== 'POST') return { status: 405, reason: 'MethodNotAllowed' };
    if (!path.startsWith('/3/device/')) return { status: 404, reason: 'BadPath' };
    if (!push.deviceToken) return { status: 400, reason: path === '/3/device/' ? 'MissingDeviceToken' : 'BadDeviceToken' };
    const auth = /^bearer (\S+)$/.exec(String(headers.authorization ?? ''));
    if (!auth) return { status: 403, reason: 'MissingProviderToken' };
    push.jwt = auth[1]!;
    const tokenProblem = await this.checkProviderToken(session, push);
    if (tokenProblem) return tokenProblem;
    const topic = headers['apns-topic'];
    if (typeof topic !== 'string') return { status: 400, reason: 'MissingTopic' };
    if (!this.topics.has(topic)) return { status: 400, reason: 'TopicDisallowed' };
    if (!PUSH_TYPES.has(String(headers['apns-push-type']))) return { status: 400, reason: 'InvalidPushType' };
    if (headers['apns-priority'] !== undefined && !PRIORITIES.has(String(headers['apns-priority']))) {
      return { status: 400, reason: 'BadPriority' };
    }
    if (headers['apns-expiration'] !== undefined && !/^\d+$/.test(String(headers['apns-expiration']))) {
      return { status: 400, reason: 'BadExpirationDate' };
    }
    if (headers['apns-collapse-id'] !== undefined && Buffer.byteLength(String(headers['apns-collapse-id'])) > 64) {
      return { status: 400, reason: 'BadCollapseId' };
    }
    if (headers['apns-id'] !== undefined && !UUID.test(String(headers['apns-id']))) return { status: 400, reason: 'BadMessageId' };
    if (body.length === 0) return { status: 400, reason: 'PayloadEmpty' };
    if (body.length > MAX_PAYLOAD) return { status: 413, reason: 'PayloadTooLarge' };
    try {
      push.payload = JSON.parse(body.toString('utf8'));
    } catch {
      return { status: 400, reason: 'PayloadEmpty' };
    }
    const aps = push.payload?.aps;
    if (typeof aps !== 'object' || aps === null || Array.isArray(aps)) return { status: 400, reason: 'PayloadEmpty' };
    return this.replies.get(push.deviceToken)?.shift() ?? { status: 200 };
  }

  private async checkProviderToken(session: Http2Session, push: ApnsPush): Promise<ApnsReply | undefined> {
    const invalid = { status: 403, reason: 'InvalidProviderToken' };
    let header;
    try {
      header = decodeProtectedHeader(push.jwt!);
    } catch {
      return invalid;
    }
    const key = typeof header.kid === 'string' ? this.keys.get(header.kid) : undefined;
    if (header.alg !== 'ES256' || !key) return invalid;
    push.kid = key.keyId;
    const first = this.sessionKid.get(session);
    if (first === undefined) {
      this.sessionKid.set(session, key.keyId);
      this.sessionsByKid.set(key.keyId, this.connections(key.keyId) + 1);
    } else if (first !== key.keyId) {
      return { status: 403, reason: 'UnrelatedKeyIdInToken' };
    }
    let iat: unknown;
    try {
      ({ payload: { iat } } = await jwtVerify(push.jwt!, key.publicKey, { algorithms: ['ES256'], issuer: key.teamId }));
    } catch {
      return invalid;
    }
    const now = Date.now() / 1000;
    if (typeof iat !== 'number' || iat > now + 60) return invalid;
    if (now - iat > TOKEN_MAX_AGE_S || this.expired.has(push.jwt!)) return { status: 403, reason: 'ExpiredProviderToken' };
    return undefined;
  }
}
