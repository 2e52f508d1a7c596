import { createECDH, ECDH } from 'node:crypto';
import webpush from 'web-push';
import type { ChannelModule, ChannelProvider, Outcome, Recipient, SendRequest } from './channel.js';
import { ConfigError } from './channel.js';
import { Fields } from './fields.js';
import { isOutcome, makeAgent, parseRetryAfter, responseDetails, sendHttp, type HttpResponse } from './http.js';

const TIMEOUT_MS = 15_000;
// A notification a day old is usually stale; the protocol's own ceiling is the service's choice
// (the reference library's default is 4 weeks, 2 419 200 s). Per notification: params.webpush.ttl.
const DEFAULT_TTL_SECONDS = 86_400;
const URGENCIES = ['very-low', 'low', 'normal', 'high'] as const;
type Urgency = (typeof URGENCIES)[number];
// RFC 8030 §5.4: at most 32 characters of the URL-safe base64 alphabet.
const TOPIC = /^[A-Za-z0-9_-]{1,32}$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

export interface PushSubscription {
  endpoint: string;
  keys: { p256dh: string; auth: string };
}

/** Decodes unpadded base64url of exactly `bytes` bytes; the error never quotes the value. */
function decodeKey(text: unknown, bytes: number, what: string): Buffer {
  if (typeof text !== 'string' || !BASE64URL.test(text)) throw new Error(`${what} must be unpadded base64url`);
  const key = Buffer.from(text, 'base64url');
  if (key.length !== bytes) throw new Error(`${what} must decode to ${bytes} bytes (it has ${key.length})`);
  return key;
}

/** A P-256 public key as the 65-byte uncompressed point browsers and VAPID use. */
function decodePoint(text: unknown, what: string): Buffer {
  const point = decodeKey(text, 65, what);
  try {
    // Throws when the bytes are not a point on the curve.
    ECDH.convertKey(point, 'prime256v1');
  } catch {
    throw new Error(`${what} is not a P-256 public key`);
  }
  return point;
}

/** Parses a browser's PushSubscription JSON (`subscription.toJSON()`); throws saying what is wrong. */
export function parseSubscription(value: string): PushSubscription {
  let raw: { endpoint?: unknown; keys?: { p256dh?: unknown; auth?: unknown } };
  try {
    raw = JSON.parse(value) as typeof raw;
  } catch {
    throw new Error('must be a push subscription as JSON: {"endpoint", "keys": {"p256dh", "auth"}}');
  }
  if (!raw || typeof raw !== 'object') throw new Error('must be a push subscription object');
  let endpoint: URL;
  try {
    endpoint = new URL(String(raw.endpoint));
  } catch {
    throw new Error('endpoint must be a URL');
  }
  if (endpoint.protocol !== 'https:' && endpoint.protocol !== 'http:') throw new Error('endpoint must be an http(s) URL');
  decodePoint(raw.keys?.p256dh, 'keys.p256dh');
  decodeKey(raw.keys?.auth, 16, 'keys.auth');
  return { endpoint: endpoint.href, keys: { p256dh: raw.keys!.p256dh as string, auth: raw.keys!.auth as string } };
}

function validateSubscription(recipient: Recipient): string | undefined {
  try {
    parseSubscription(recipient.value);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

interface PushOptions {
  TTL: number;
  urgency: Urgency;
  topic?: string;
}

/** Per-notification headers from `params.webpush` ({ttl, urgency, topic}), over the provider's defaults. */
export function toPushOptions(params: Record<string, unknown>, defaults: PushOptions): PushOptions {
  const raw = params.webpush;
  if (raw === undefined) return defaults;
  if (!raw || typeof raw !== 'object') throw new Error('params.webpush must be an object {ttl, urgency, topic}');
  const { ttl, urgency, topic } = raw as Record<string, unknown>;
  if (ttl !== undefined && (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 0)) {
    throw new Error('params.webpush.ttl must be a whole number of seconds ≥ 0');
  }
  if (urgency !== undefined && !URGENCIES.includes(urgency as Urgency)) {
    throw new Error(`params.webpush.urgency must be one of ${URGENCIES.join(', ')}`);
  }
  if (topic !== undefined && (typeof topic !== 'string' || !TOPIC.test(topic))) {
    throw new Error('params.webpush.topic must be 1 to 32 characters of A-Z a-z 0-9 - _');
  }
  return {
    TTL: (ttl as number | undefined) ?? defaults.TTL,
    urgency: (urgency as Urgency | undefined) ?? defaults.urgency,
    topic: (topic as string | undefined) ?? defaults.topic,
  };
}

/** What the browser's service worker receives: the notification, and the params as `data`. */
export function toPushPayload(subject: string, body: string, params: Record<string, unknown>): string {
  // Delivery options are for the push service, not the page.
  const { webpush: _options, ...data } = params;
  return JSON.stringify({ title: subject, body, data });
}

/**
 * What a push service's answer means (RFC 8030 §5, §7.3): any 2xx accepted; 404 and 410 say the
 * subscription expired or was dropped by the user, so the address is dead and the app should
 * delete it; 429 and 5xx are transient, after Retry-After; 400 (bad TTL/Topic/encoding),
 * 401/403 (VAPID rejected) and 413 (payload over 4 096 bytes) fail as sent.
 */
export function classifyPushResponse(res: HttpResponse): Outcome {
  const details = responseDetails(res);
  if (res.status >= 200 && res.status < 300) {
    return { kind: 'sent', details: { status: res.status, location: res.headers.location } };
  }
  const error = `HTTP ${res.status}`;
  if (res.status === 404 || res.status === 410) {
    return { kind: 'dead', error: `${error}: subscription expired or unsubscribed; remove it`, details };
  }
  if (res.status === 429 || res.status >= 500) {
    return { kind: 'retry', error, retryAfterMs: parseRetryAfter(res.headers['retry-after']), details };
  }
  if (res.status === 401 || res.status === 403) {
    return { kind: 'failed', error: `${error}: VAPID rejected (is vapidPublicKey the key the browser subscribed with?)`, details };
  }
  if (res.status === 413) return { kind: 'failed', error: `${error}: payload too large (keep it under 3 993 bytes)`, details };
  return { kind: 'failed', error, details };
}

function readVapid(f: Fields, name: string): webpush.VapidKeys & { subject: string } {
  const publicKey = f.string('vapidPublicKey');
  const privateKey = f.string('vapidPrivateKey');
  const subject = f.string('subject');
  const fail = (key: string, problem: string) => new ConfigError(`providers.${name}.${key}`, problem);
  let point: Buffer;
  try {
    point = decodePoint(publicKey, 'the key');
  } catch (error) {
    throw fail('vapidPublicKey', (error as Error).message);
  }
  let scalar: Buffer;
  try {
    scalar = decodeKey(privateKey, 32, 'the key');
  } catch (error) {
    throw fail('vapidPrivateKey', (error as Error).message);
  }
  const ecdh = createECDH('prime256v1');
  try {
    ecdh.setPrivateKey(scalar);
  } catch {
    throw fail('vapidPrivateKey', 'is not a P-256 private key');
  }
  if (!ecdh.getPublicKey().equals(point)) throw fail('vapidPublicKey', 'is not the public half of vapidPrivateKey');
  // RFC 8292 §2.1: a contact for the push service operator; Apple refuses pushes without one.
  if (!/^mailto:\S+@\S+$/.test(subject) && !/^https:\/\/\S+$/.test(subject)) {
    throw fail('subject', 'must be a mailto: address or an https: URL');
  }
  return { publicKey, privateKey, subject };
}

export const webpushModule: ChannelModule = {
  type: 'webpush',
  create(name, raw): ChannelProvider {
    const f = new Fields(`providers.${name}`, raw);
    const vapidDetails = readVapid(f, name);
    const defaults: PushOptions = {
      TTL: f.optionalNumber('ttl', 0) ?? DEFAULT_TTL_SECONDS,
      urgency: f.oneOf('urgency', URGENCIES, 'normal'),
    };
    const agent = makeAgent(TIMEOUT_MS);
    return {
      name,
      type: 'webpush',
      recipientTypes: ['webpush'],
      validateTarget: validateSubscription,
      async send({ delivery, content, signal }: SendRequest): Promise<Outcome> {
        let push: ReturnType<typeof webpush.generateRequestDetails>;
        try {
          const subscription = parseSubscription(delivery.recipient.value);
          const options = toPushOptions(content.params, defaults);
          // Encrypts with a fresh ephemeral key and salt (aes128gcm) and signs a VAPID JWT for
          // the endpoint's origin, valid 12 h.
          push = webpush.generateRequestDetails(subscription, toPushPayload(content.subject, content.body, content.params), {
            vapidDetails,
            contentEncoding: 'aes128gcm',
            ...options,
          });
        } catch (error) {
          return { kind: 'failed', error: (error as Error).message };
        }
        const headers = Object.fromEntries(Object.entries(push.headers).map(([k, v]) => [k.toLowerCase(), String(v)]));
        const res = await sendHttp(agent, push.endpoint, { headers, body: push.body ?? undefined, signal });
        return isOutcome(res) ? res : classifyPushResponse(res);
      },
      close: () => agent.close(),
    };
  },
};
