import { createPrivateKey, type KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import type { Agent } from 'undici';
import type { ChannelModule, ChannelProvider, Content, Outcome, Recipient } from './channel.js';
import { ConfigError } from './channel.js';
import { Fields } from './fields.js';
import { isOutcome, makeAgent, parseRetryAfter, responseDetails, sendHttp, type HttpResponse } from './http.js';

const DEFAULT_BASE_URL = 'https://fcm.googleapis.com';
const DEFAULT_TOKEN_URI = 'https://oauth2.googleapis.com/token';
const DEFAULT_TIMEOUT_MS = 15_000;
const SCOPE = 'https://www.googleapis.com/auth/firebase.messaging';
/** Google accepts an assertion valid for at most one hour. */
const ASSERTION_LIFETIME_S = 3600;
/**
 * Access tokens live 3599 s; one is renewed 5 min before it expires, so a send never carries a
 * token that runs out on the way and a few minutes of clock drift do no harm.
 */
const TOKEN_RENEW_MARGIN_MS = 5 * 60_000;
/** FCM asks senders that get 429 without Retry-After to wait at least a minute. */
const QUOTA_DEFAULT_WAIT_MS = 60_000;

const TOPIC = /^[a-zA-Z0-9\-_.~%]+$/;
const DEVICE_TOKEN = /^[A-Za-z0-9\-_:.]{1,4096}$/;
const INVALID_TOKEN_MESSAGE = /registration token is not a valid FCM registration token/i;
/** Message fields `params.fcm` may carry, passed on as given (FCM validates them). */
const PLATFORM_FIELDS = ['android', 'apns', 'webpush', 'fcm_options'] as const;

type Target = { token: string } | { topic: string };

interface ServiceAccount {
  clientEmail: string;
  privateKey: KeyObject;
  privateKeyId?: string;
  tokenUri: string;
  projectId?: string;
}

interface AccessToken {
  value: string;
  expiresAt: number;
}

/** Reads FCM's error envelope: the FcmError detail's errorCode first, else error.status. */
function readFcmError(body: string): { code?: string; message?: string; tokenViolation: boolean } {
  try {
    const error = (JSON.parse(body) as { error?: Record<string, unknown> }).error ?? {};
    const details = Array.isArray(error.details) ? (error.details as Record<string, unknown>[]) : [];
    const fcm = details.find((d) => String(d['@type']).endsWith('google.firebase.fcm.v1.FcmError'));
    const violations = details.flatMap((d) => (Array.isArray(d.fieldViolations) ? (d.fieldViolations as { field?: unknown }[]) : []));
    return {
      code: typeof fcm?.errorCode === 'string' ? fcm.errorCode : typeof error.status === 'string' ? error.status : undefined,
      message: typeof error.message === 'string' ? error.message : undefined,
      tokenViolation: violations.some((v) => v.field === 'message.token'),
    };
  } catch {
    return { tokenViolation: false };
  }
}

/**
 * True when FCM refused the access token itself: 401 UNAUTHENTICATED, not THIRD_PARTY_AUTH_ERROR
 * (APNs or web-push credentials held by Firebase). A 403 PERMISSION_DENIED is left alone: a new
 * token for the same account carries the same permissions, and fetching one per send would only
 * load the token endpoint.
 */
function refusedAccessToken(res: HttpResponse): boolean {
  return res.status === 401 && (readFcmError(res.body).code ?? 'UNAUTHENTICATED') === 'UNAUTHENTICATED';
}

/**
 * Maps a messages:send answer to an outcome (specs/providers.md §6.3). Only errors about the
 * device token itself are dead: UNREGISTERED, SENDER_ID_MISMATCH, and INVALID_ARGUMENT when FCM
 * says the token is malformed. Any other INVALID_ARGUMENT is about the message, so it fails.
 */
export function classifyFcmResponse(res: HttpResponse, target: Target): Outcome {
  const details = responseDetails(res);
  if (res.status >= 200 && res.status < 300) {
    let name: unknown;
    try {
      name = (JSON.parse(res.body) as { name?: unknown }).name;
    } catch {
      // Sent all the same; the id is only for the log.
    }
    return { kind: 'sent', details: { status: res.status, name } };
  }
  const { code, message, tokenViolation } = readFcmError(res.body);
  const error = `FCM ${res.status} ${code ?? ''}${message ? `: ${message}` : ''}`.trim();
  const toToken = 'token' in target;
  if (toToken && (code === 'UNREGISTERED' || code === 'SENDER_ID_MISMATCH')) return { kind: 'dead', error, details };
  if (toToken && code === 'INVALID_ARGUMENT' && (tokenViolation || INVALID_TOKEN_MESSAGE.test(message ?? ''))) {
    return { kind: 'dead', error, details };
  }
  const retryAfterMs = parseRetryAfter(res.headers['retry-after']);
  if (res.status === 429 || code === 'QUOTA_EXCEEDED') {
    return { kind: 'retry', error, retryAfterMs: retryAfterMs ?? QUOTA_DEFAULT_WAIT_MS, details };
  }
  if (res.status >= 500 || code === 'UNAVAILABLE' || code === 'INTERNAL') return { kind: 'retry', error, retryAfterMs, details };
  return { kind: 'failed', error, details };
}

/** Builds the v1 message: notification from the content, `params.data` as string data, platform blocks from `params.fcm`. */
export function toFcmMessage(content: Content, target: Target): Record<string, unknown> {
  const message: Record<string, unknown> = {
    ...target,
    notification: content.subject ? { title: content.subject, body: content.body } : { body: content.body },
  };
  const data = content.params.data;
  if (data !== undefined && data !== null) {
    if (typeof data !== 'object' || Array.isArray(data)) throw new Error('params.data must be an object');
    // FCM data values must be strings; anything else is sent as its JSON text.
    message.data = Object.fromEntries(
      Object.entries(data).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]),
    );
  }
  const platform = content.params.fcm;
  if (platform !== undefined && platform !== null) {
    if (typeof platform !== 'object' || Array.isArray(platform)) throw new Error('params.fcm must be an object');
    for (const field of PLATFORM_FIELDS) {
      const value = (platform as Record<string, unknown>)[field];
      if (value !== undefined) message[field] = value;
    }
  }
  return message;
}

function toTarget(recipient: Recipient): Target {
  return recipient.type === 'fcm_topic' ? { topic: recipient.value.replace(/^\/topics\//, '') } : { token: recipient.value };
}

function validateTarget(recipient: Recipient): string | undefined {
  if (recipient.type === 'fcm_topic') {
    return TOPIC.test(recipient.value.replace(/^\/topics\//, '')) ? undefined : 'must be a topic name of [a-zA-Z0-9-_.~%]';
  }
  return DEVICE_TOKEN.test(recipient.value) ? undefined : 'must be an FCM registration token';
}

/** `serviceAccount` is the key file's JSON text or its path. Errors never echo the value. */
function readServiceAccount(f: Fields, prefix: string): ServiceAccount {
  const key = `${prefix}.serviceAccount`;
  const text = f.textOrFile('serviceAccount', (v) => v.trimStart().startsWith('{'), 'service-account JSON');
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ConfigError(key, 'is not service-account JSON');
  }
  const field = (name: string) => (typeof json[name] === 'string' && json[name] !== '' ? (json[name] as string) : undefined);
  const clientEmail = field('client_email');
  if (!clientEmail) throw new ConfigError(`${key}.client_email`, 'is required');
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(field('private_key') ?? '');
  } catch {
    throw new ConfigError(`${key}.private_key`, 'is not a PEM private key');
  }
  if (privateKey.asymmetricKeyType !== 'rsa') throw new ConfigError(`${key}.private_key`, 'must be an RSA key');
  const tokenUri = field('token_uri') ?? DEFAULT_TOKEN_URI;
  try {
    new URL(tokenUri);
  } catch {
    throw new ConfigError(`${key}.token_uri`, 'must be a URL');
  }
  return { clientEmail, privateKey, privateKeyId: field('private_key_id'), tokenUri, projectId: field('project_id') };
}

/**
 * The OAuth2 access token for the service account (JWT bearer grant), shared by every send and
 * fetched by one request at a time however many sends want it.
 */
class AccessTokens {
  private token?: AccessToken;
  private pending?: Promise<AccessToken | Outcome>;

  constructor(
    private readonly account: ServiceAccount,
    private readonly agent: Agent,
  ) {}

  get(signal: AbortSignal): Promise<AccessToken | Outcome> {
    if (this.token && this.token.expiresAt - Date.now() > TOKEN_RENEW_MARGIN_MS) return Promise.resolve(this.token);
    this.pending ??= this.grant(signal).finally(() => (this.pending = undefined));
    return this.pending;
  }

  /** Forgets `rejected` so the next get() fetches a new token, unless one already replaced it. */
  invalidate(rejected: AccessToken): void {
    if (this.token === rejected) this.token = undefined;
  }

  private async grant(signal: AbortSignal): Promise<AccessToken | Outcome> {
    const { account } = this;
    const iat = Math.floor(Date.now() / 1000);
    const assertion = await new SignJWT({ scope: SCOPE })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', ...(account.privateKeyId ? { kid: account.privateKeyId } : {}) })
      .setIssuer(account.clientEmail)
      .setAudience(account.tokenUri)
      .setIssuedAt(iat)
      .setExpirationTime(iat + ASSERTION_LIFETIME_S)
      .sign(account.privateKey);
    const res = await sendHttp(this.agent, account.tokenUri, {
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion }).toString(),
      signal,
    });
    if (isOutcome(res)) return res.kind === 'retry' ? { ...res, error: `token endpoint unreachable: ${res.error}` } : res;
    let parsed: { access_token?: unknown; expires_in?: unknown; error?: unknown; error_description?: unknown } = {};
    try {
      parsed = JSON.parse(res.body);
    } catch {
      // Classified by status below.
    }
    if (res.status === 200 && typeof parsed.access_token === 'string') {
      const lifetimeS = typeof parsed.expires_in === 'number' ? parsed.expires_in : 3600;
      this.token = { value: parsed.access_token, expiresAt: Date.now() + lifetimeS * 1000 };
      return this.token;
    }
    // The token endpoint's error body names the problem and holds no secret; never log the assertion.
    const error = `token endpoint refused the service account: HTTP ${res.status} ${String(parsed.error ?? '')} ${String(parsed.error_description ?? '')}`.trim();
    const details = { status: res.status, error: parsed.error, description: parsed.error_description };
    if (res.status === 429 || res.status >= 500) {
      return { kind: 'retry', error, retryAfterMs: parseRetryAfter(res.headers['retry-after']), details };
    }
    return { kind: 'failed', error, details };
  }
}

export const fcmModule: ChannelModule = {
  type: 'fcm',
  create(name, raw): ChannelProvider {
    const prefix = `providers.${name}`;
    const f = new Fields(prefix, raw);
    const account = readServiceAccount(f, prefix);
    const projectId = f.optionalString('projectId') ?? account.projectId;
    if (!projectId) throw new ConfigError(`${prefix}.projectId`, 'is required when the service account has no project_id');
    const baseUrl = (f.optionalString('baseUrl') ?? DEFAULT_BASE_URL).replace(/\/+$/, '');
    const url = `${baseUrl}/v1/projects/${encodeURIComponent(projectId)}/messages:send`;
    const agent = makeAgent(f.optionalNumber('timeoutMs', 1) ?? DEFAULT_TIMEOUT_MS);
    const tokens = new AccessTokens(account, agent);

    const post = (token: AccessToken, body: string, signal: AbortSignal) =>
      sendHttp(agent, url, {
        headers: { authorization: `Bearer ${token.value}`, 'content-type': 'application/json' },
        body,
        signal,
      });

    return {
      name,
      type: 'fcm',
      recipientTypes: ['fcm_token', 'fcm_topic'],
      validateTarget,
      async send({ delivery, content, signal }): Promise<Outcome> {
        const target = toTarget(delivery.recipient);
        let body: string;
        try {
          body = JSON.stringify({ message: toFcmMessage(content, target) });
        } catch (error) {
          return { kind: 'failed', error: (error as Error).message };
        }
        let token = await tokens.get(signal);
        if ('kind' in token) return token;
        let res = await post(token, body, signal);
        // A token revoked or expired early: fetch a new one and try once more.
        if (!isOutcome(res) && refusedAccessToken(res)) {
          tokens.invalidate(token);
          token = await tokens.get(signal);
          if ('kind' in token) return token;
          res = await post(token, body, signal);
        }
        return isOutcome(res) ? res : classifyFcmResponse(res, target);
      },
      close: () => agent.close(),
    };
  },
};
