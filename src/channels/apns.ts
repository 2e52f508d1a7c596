import { createPrivateKey, type KeyObject } from 'node:crypto';
import { connect, type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import { SignJWT } from 'jose';
import type { ChannelModule, ChannelProvider, Content, DeliveryRef, Outcome, Recipient } from './channel.js';
import { ConfigError } from './channel.js';
import { Fields } from './fields.js';
import { parseRetryAfter } from './http.js';

/** The two provider types differ only in the host they talk to. */
const DEFAULT_HOSTS = { apns: 'api.push.apple.com', apns_sandbox: 'api.sandbox.push.apple.com' } as const;
type ApnsType = keyof typeof DEFAULT_HOSTS;

/**
 * Apple refuses a provider token whose `iat` is over 60 min old (403 ExpiredProviderToken) and a
 * connection whose token changes more often than every 20 min (429 TooManyProviderTokenUpdates).
 * Renewing at 50 min stays inside both, with 10 min of slack for clock drift.
 */
const TOKEN_RENEW_AFTER_MS = 50 * 60_000;
const TOKEN_MIN_AGE_MS = 20 * 60_000;

const TEN_CHAR_ID = /^[A-Z0-9]{10}$/;
// Hex, whole bytes; Apple says not to assume today's 32-byte length, so allow 16..256 bytes.
const DEVICE_TOKEN = /^(?:[0-9a-fA-F]{2}){16,256}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** 403 reasons a freshly signed token may cure; the send is repeated once with a new token. */
const TOKEN_REASONS = new Set(['ExpiredProviderToken', 'InvalidProviderToken']);
/** The token is gone from the app (410) or was never valid for this environment or topic. */
const DEAD_REASONS = new Set(['BadDeviceToken', 'DeviceTokenNotForTopic', 'Unregistered', 'ExpiredToken']);
/** Answers that say this connection is finished: the next send opens a new one. */
const RECONNECT_REASONS = new Set(['IdleTimeout', 'UnrelatedKeyIdInToken', 'Shutdown']);

interface ApnsResponse {
  status: number;
  headers: IncomingHttpHeaders;
  reason?: string;
  /** 410 only: milliseconds since the epoch when the token stopped being valid. */
  timestamp?: number;
}

/** The request for one delivery: APNs headers (without auth and path) and the JSON payload. */
export interface ApnsMessage {
  headers: Record<string, string>;
  payload: string;
}

function asObject(value: unknown, key: string): Record<string, unknown> | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) throw new Error(`${key} must be an object`);
  return value as Record<string, unknown>;
}

function asString(value: unknown, key: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new Error(`${key} must be a string`);
  return value;
}

function asInteger(value: unknown, key: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) throw new Error(`${key} must be a whole number`);
  return n;
}

/**
 * Builds the request from rendered content. `params.apns` may set `pushType` (default alert),
 * `priority` (default 10, or 5 for background pushes as Apple requires), `expiration` (unix
 * seconds; omitted by default, so APNs stores and retries per its own policy), `collapseId`,
 * `topic` (default: the provider's) and `aps` (keys merged into `aps`, e.g. badge, sound).
 * `params.data` keys become the payload's top-level custom keys. Throws on a malformed option.
 */
export function toApnsMessage(content: Content, delivery: DeliveryRef, defaultTopic: string): ApnsMessage {
  const options = asObject(content.params.apns, 'params.apns') ?? {};
  const data = asObject(content.params.data, 'params.data') ?? {};
  const pushType = asString(options.pushType, 'params.apns.pushType') ?? 'alert';
  const background = pushType === 'background';
  const priority = asInteger(options.priority, 'params.apns.priority') ?? (background ? 5 : 10);
  const expiration = asInteger(options.expiration, 'params.apns.expiration');
  const collapseId = asString(options.collapseId, 'params.apns.collapseId');
  const topic = asString(options.topic, 'params.apns.topic') ?? defaultTopic;
  const extraAps = asObject(options.aps, 'params.apns.aps') ?? {};
  const alert = content.subject ? { title: content.subject, body: content.body } : { body: content.body };
  const aps = background ? { 'content-available': 1, ...extraAps } : { alert, ...extraAps };
  const headers: Record<string, string> = {
    'apns-topic': topic,
    'apns-push-type': pushType,
    'apns-priority': String(priority),
  };
  if (expiration !== undefined) headers['apns-expiration'] = String(expiration);
  if (collapseId !== undefined) headers['apns-collapse-id'] = collapseId;
  // The delivery id names the notification to Apple, so its logs and ours line up.
  if (UUID.test(delivery.id)) headers['apns-id'] = delivery.id;
  return { headers, payload: JSON.stringify({ ...data, aps }) };
}

/** Maps an APNs answer to an outcome (specs/providers.md §5.5). */
export function classifyApnsResponse(res: ApnsResponse): Outcome {
  const apnsId = res.headers['apns-id'];
  if (res.status === 200) return { kind: 'sent', details: { status: 200, apnsId, apnsUniqueId: res.headers['apns-unique-id'] } };
  const details = { status: res.status, reason: res.reason, apnsId, timestamp: res.timestamp };
  const error = `APNs ${res.status} ${res.reason ?? '(no reason)'}`;
  if (res.status === 410 || (res.reason !== undefined && DEAD_REASONS.has(res.reason))) return { kind: 'dead', error, details };
  if (
    res.status === 429 ||
    res.status >= 500 ||
    res.reason === 'ExpiredProviderToken' ||
    (res.reason !== undefined && RECONNECT_REASONS.has(res.reason))
  ) {
    return { kind: 'retry', error, retryAfterMs: parseRetryAfter(res.headers['retry-after']), details };
  }
  return { kind: 'failed', error, details };
}

interface ProviderToken {
  jwt: Promise<string>;
  issuedAt: number;
  /** Minted because Apple refused the one before it. */
  replacement: boolean;
}

/** The provider's ES256 token: one at a time, shared by every send, renewed within Apple's rules. */
class ProviderTokens {
  private token?: ProviderToken;

  constructor(
    private readonly key: KeyObject,
    private readonly keyId: string,
    private readonly teamId: string,
  ) {}

  current(now = Date.now()): ProviderToken {
    if (!this.token || now - this.token.issuedAt >= TOKEN_RENEW_AFTER_MS) this.token = this.mint(now, false);
    return this.token;
  }

  /**
   * A token to try after Apple refused `rejected`, or undefined when another new one cannot help:
   * a replacement refused within 20 min means the key or clock is wrong, and minting again would
   * only earn 429 TooManyProviderTokenUpdates. Concurrent refusals of one token mint one successor.
   */
  replace(rejected: ProviderToken, now = Date.now()): ProviderToken | undefined {
    if (this.token !== rejected) return this.current(now);
    if (rejected.replacement && now - rejected.issuedAt < TOKEN_MIN_AGE_MS) return undefined;
    return (this.token = this.mint(now, true));
  }

  private mint(now: number, replacement: boolean): ProviderToken {
    const jwt = new SignJWT({ iss: this.teamId })
      .setProtectedHeader({ alg: 'ES256', kid: this.keyId })
      .setIssuedAt(Math.floor(now / 1000))
      .sign(this.key);
    return { jwt, issuedAt: now, replacement };
  }
}

/**
 * One HTTP/2 connection per provider, shared by every send (Apple asks for long-lived connections
 * rather than one per notification). A GOAWAY, close or error drops it; the next send dials again.
 */
class ApnsConnection {
  private session?: ClientHttp2Session;

  constructor(private readonly origin: string) {}

  private open(): ClientHttp2Session {
    if (this.session && !this.session.closed && !this.session.destroyed) return this.session;
    const session = connect(this.origin);
    const drop = () => {
      if (this.session === session) this.session = undefined;
    };
    session.on('goaway', drop).on('close', drop).on('error', drop);
    this.session = session;
    return session;
  }

  post(headers: OutgoingHttpHeaders, body: string, signal: AbortSignal): Promise<ApnsResponse> {
    return new Promise((resolve, reject) => {
      const session = this.open();
      const stream = session.request({ ':method': 'POST', ...headers }, { signal });
      let status = 0;
      let resHeaders: IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      stream.on('response', (h) => {
        resHeaders = h;
        status = Number(h[':status']);
      });
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: { reason?: unknown; timestamp?: unknown } = {};
        try {
          parsed = text ? JSON.parse(text) : {};
        } catch {
          // Not JSON: classified by status alone.
        }
        resolve({
          status,
          headers: resHeaders,
          reason: typeof parsed.reason === 'string' ? parsed.reason : undefined,
          timestamp: typeof parsed.timestamp === 'number' ? parsed.timestamp : undefined,
        });
      });
      stream.on('error', (error) => {
        // A connect that never completes would hold every later send: start over next time.
        if (session.connecting) session.destroy();
        reject(error);
      });
      stream.on('close', () => reject(new Error(`stream closed without an answer (HTTP/2 code ${stream.rstCode})`)));
      stream.end(body);
    });
  }

  /** Drops the connection (Apple said it is finished); streams on it may complete. */
  reset(): void {
    this.session?.close();
    this.session = undefined;
  }

  close(): Promise<void> {
    const session = this.session;
    this.session = undefined;
    if (!session || session.closed) return Promise.resolve();
    return new Promise((resolve) => session.close(() => resolve()));
  }
}

/**
 * Reads `host`: a bare host[:port] or an https:// URL means TLS on port 443 by default. An http://
 * URL means cleartext HTTP/2 (h2c): Apple never serves it, but a test's fake APNs can, and the
 * framing, headers and tokens are exactly those sent over TLS. Testing over TLS instead would need
 * the fake's certificate trusted, and Node reads NODE_EXTRA_CA_CERTS only at process start.
 */
function parseHost(value: string, key: string): string {
  let url: URL;
  try {
    url = new URL(/^[a-z]+:\/\//i.test(value) ? value : `https://${value}`);
  } catch {
    throw new ConfigError(key, 'must be a host name, host:port or URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new ConfigError(key, 'must be an https:// or http:// URL');
  return url.origin;
}

/** `privateKey` is the .p8 file's PEM text or its path. Errors never echo the value. */
function readSigningKey(f: Fields, prefix: string): KeyObject {
  const key = `${prefix}.privateKey`;
  const pem = f.textOrFile('privateKey', (v) => v.includes('-----BEGIN'), 'PEM text');
  let signingKey: KeyObject;
  try {
    signingKey = createPrivateKey(pem);
  } catch {
    throw new ConfigError(key, 'is not a PEM private key');
  }
  if (signingKey.asymmetricKeyType !== 'ec' || signingKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new ConfigError(key, 'must be an EC P-256 key (the .p8 file from Apple)');
  }
  return signingKey;
}

function validateDeviceToken(recipient: Recipient): string | undefined {
  return DEVICE_TOKEN.test(recipient.value) ? undefined : 'must be a hex APNs device token';
}

function makeApnsModule(type: ApnsType): ChannelModule {
  return {
    type,
    create(name, raw): ChannelProvider {
      const prefix = `providers.${name}`;
      const f = new Fields(prefix, raw);
      const teamId = f.string('teamId');
      if (!TEN_CHAR_ID.test(teamId)) throw new ConfigError(`${prefix}.teamId`, 'must be the 10-character Team ID');
      const keyId = f.string('keyId');
      if (!TEN_CHAR_ID.test(keyId)) throw new ConfigError(`${prefix}.keyId`, 'must be the 10-character Key ID');
      const tokens = new ProviderTokens(readSigningKey(f, prefix), keyId, teamId);
      const topic = f.string('topic');
      const connection = new ApnsConnection(parseHost(f.optionalString('host') ?? DEFAULT_HOSTS[type], `${prefix}.host`));

      async function post(path: string, message: ApnsMessage, token: ProviderToken, signal: AbortSignal) {
        const headers = { ':path': path, authorization: `bearer ${await token.jwt}`, ...message.headers };
        try {
          return await connection.post(headers, message.payload, signal);
        } catch (error) {
          return { kind: 'retry', error: `APNs request failed: ${(error as Error).message}` } satisfies Outcome;
        }
      }

      return {
        name,
        type,
        recipientTypes: ['apns_token'],
        validateTarget: validateDeviceToken,
        async send({ delivery, content, signal }): Promise<Outcome> {
          let message: ApnsMessage;
          try {
            message = toApnsMessage(content, delivery, topic);
          } catch (error) {
            return { kind: 'failed', error: (error as Error).message };
          }
          const path = `/3/device/${delivery.recipient.value}`;
          const token = tokens.current();
          let res = await post(path, message, token, signal);
          if ('status' in res && res.status === 403 && res.reason !== undefined && TOKEN_REASONS.has(res.reason)) {
            const fresh = tokens.replace(token);
            if (fresh) res = await post(path, message, fresh, signal);
          }
          if ('kind' in res) return res;
          if (res.reason !== undefined && RECONNECT_REASONS.has(res.reason)) connection.reset();
          return classifyApnsResponse(res);
        },
        close: () => connection.close(),
      };
    },
  };
}

export const apnsModule = makeApnsModule('apns');
export const apnsSandboxModule = makeApnsModule('apns_sandbox');
