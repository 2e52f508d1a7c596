import { createECDH, createDecipheriv, createHmac, randomBytes, type ECDH } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { decodeJwt, importJWK, jwtVerify } from 'jose';
import { FakeHttpService, type FakeReply } from '../helpers/fake-http.js';

/**
 * A push service (RFC 8030) on 127.0.0.1 that checks each push as a real one would: TTL, Topic,
 * Urgency and Content-Encoding headers; a VAPID JWT (RFC 8292) verified against the `k=` key,
 * which must be the subscription's application server key; a body of at most 4 096 bytes,
 * decrypted with the subscription's own private key (RFC 8291 / RFC 8188).
 */

/** One browser subscription: the key pair and auth secret only the user agent holds. */
export interface FakeSubscription {
  id: string;
  ecdh: ECDH;
  auth: Buffer;
  /** What the browser hands the app: `subscription.toJSON()`. */
  json: string;
}

export interface ReceivedPush {
  subscription: string;
  at: number;
  headers: IncomingMessage['headers'];
  claims?: Record<string, unknown>;
  /** The decrypted payload, parsed. */
  payload?: unknown;
  status: number;
  rejected?: string;
}

const HKDF_INFO = (label: string) => Buffer.concat([Buffer.from(`Content-Encoding: ${label}\0`), Buffer.from([1])]);
const hmac = (key: Buffer, data: Buffer) => createHmac('sha256', key).update(data).digest();
const MAX_BODY = 4096;
const DAY_SECONDS = 24 * 60 * 60;

/**
 * Decrypts an aes128gcm body (RFC 8188 §2) for a user agent holding `ecdh` (its P-256 key pair)
 * and `auth` (RFC 8291 §3.4), written from the RFCs step by step. Single record only.
 */
export function decryptAes128gcm(body: Buffer, ecdh: ECDH, auth: Buffer): Buffer {
  if (body.length < 21) throw new Error('body shorter than the aes128gcm header');
  const salt = body.subarray(0, 16);
  const rs = body.readUInt32BE(16);
  const idlen = body[20]!;
  if (idlen !== 65) throw new Error(`keyid is ${idlen} bytes, not a 65-byte P-256 point`);
  const asPublic = body.subarray(21, 21 + idlen);
  const ciphertext = body.subarray(21 + idlen);
  if (rs < 18) throw new Error(`record size ${rs} below 18`);
  if (ciphertext.length > rs) throw new Error('more than one record');
  const uaPublic = ecdh.getPublicKey();
  const ecdhSecret = ecdh.computeSecret(asPublic);
  const prkKey = hmac(auth, ecdhSecret);
  const keyInfo = Buffer.concat([Buffer.from('WebPush: info\0'), uaPublic, asPublic, Buffer.from([1])]);
  const ikm = hmac(prkKey, keyInfo);
  const prk = hmac(salt, ikm);
  const cek = hmac(prk, HKDF_INFO('aes128gcm')).subarray(0, 16);
  const nonce = hmac(prk, HKDF_INFO('nonce')).subarray(0, 12);
  const decipher = createDecipheriv('aes-128-gcm', cek, nonce);
  decipher.setAuthTag(ciphertext.subarray(ciphertext.length - 16));
  const record = Buffer.concat([decipher.update(ciphertext.subarray(0, ciphertext.length - 16)), decipher.final()]);
  let end = record.length - 1;
  while (end >= 0 && record[end] === 0) end--;
  if (record[end] !== 2) throw new Error('last record lacks the 0x02 delimiter');
  return record.subarray(0, end);
}

/** The `k=` key of a `vapid t=…, k=…` header as a jose key (a raw point is not a JWK). */
async function importVapidKey(k: string) {
  const point = Buffer.from(k, 'base64url');
  if (point.length !== 65 || point[0] !== 4) throw new Error('k is not an uncompressed P-256 point');
  return importJWK(
    { kty: 'EC', crv: 'P-256', x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33).toString('base64url') },
    'ES256',
  );
}

export class FakePushService extends FakeHttpService {
  readonly received: ReceivedPush[] = [];
  private readonly subscriptions = new Map<string, FakeSubscription>();
  private readonly scripts = new Map<string, FakeReply[]>();
  private nextId = 1;

  private constructor(
    /** The VAPID public key subscriptions were made with (the page's applicationServerKey). */
    private readonly applicationServerKey: string,
  ) {
    super();
  }

  static start(applicationServerKey: string): Promise<FakePushService> {
    return new FakePushService(applicationServerKey).listen();
  }

  /** A new browser subscription (fresh key pair and auth secret). */
  subscribe(): FakeSubscription {
    const id = `sub${this.nextId++}`;
    const ecdh = createECDH('prime256v1');
    ecdh.generateKeys();
    const auth = randomBytes(16);
    const json = JSON.stringify({
      endpoint: `${this.url}/push/${id}`,
      expirationTime: null,
      keys: { p256dh: ecdh.getPublicKey().toString('base64url'), auth: auth.toString('base64url') },
    });
    const sub = { id, ecdh, auth, json };
    this.subscriptions.set(id, sub);
    return sub;
  }

  /** Answers the subscription's next pushes with these replies, in order, before accepting again. */
  script(sub: FakeSubscription, ...replies: FakeReply[]): void {
    this.scripts.set(sub.id, replies);
  }

  to(sub: FakeSubscription): ReceivedPush[] {
    return this.received.filter((r) => r.subscription === sub.id);
  }

  protected async handle(req: IncomingMessage, body: Buffer): Promise<FakeReply> {
    const id = /^\/push\/([\w-]+)$/.exec(req.url ?? '')?.[1] ?? '';
    const entry: ReceivedPush = { subscription: id, at: Date.now(), headers: req.headers, status: 0 };
    this.received.push(entry);
    const reply = await this.check(req, body, entry).catch((error: Error) => ({ status: 400, body: error.message }));
    entry.status = reply.status;
    if (reply.status >= 300) entry.rejected ??= reply.body;
    return reply;
  }

  private async check(req: IncomingMessage, body: Buffer, entry: ReceivedPush): Promise<FakeReply> {
    const h = req.headers;
    if (req.method !== 'POST') return { status: 405, body: 'POST only' };
    if (h.ttl === undefined || !/^\d+$/.test(String(h.ttl))) return { status: 400, body: 'TTL header missing or not an integer' };
    if (h.topic !== undefined && !/^[A-Za-z0-9_-]{1,32}$/.test(String(h.topic))) return { status: 400, body: 'bad Topic' };
    if (h.urgency !== undefined && !['very-low', 'low', 'normal', 'high'].includes(String(h.urgency))) {
      return { status: 400, body: 'bad Urgency' };
    }
    const auth = /^vapid t=([^,\s]+),\s*k=([A-Za-z0-9_-]+)$/.exec(String(h.authorization ?? ''));
    if (!auth) return { status: 401, body: 'missing vapid Authorization' };
    const [, token, k] = auth as unknown as [string, string, string];
    try {
      const { payload, protectedHeader } = await jwtVerify(token, await importVapidKey(k), {
        algorithms: ['ES256'],
        audience: this.url,
        typ: 'JWT',
      });
      entry.claims = payload;
      const now = Math.floor(Date.now() / 1000);
      if (protectedHeader.alg !== 'ES256') throw new Error('alg');
      if (typeof payload.exp !== 'number' || payload.exp > now + DAY_SECONDS) throw new Error('exp more than 24 h ahead');
      if (typeof payload.sub !== 'string' || !/^(mailto:|https:)/.test(payload.sub)) throw new Error('sub missing');
    } catch (error) {
      entry.claims ??= decodeJwt(token);
      return { status: 401, body: `invalid VAPID JWT: ${(error as Error).message}` };
    }
    if (k !== this.applicationServerKey) return { status: 403, body: '{"reason":"VapidPkHashMismatch"}' };
    const sub = this.subscriptions.get(entry.subscription);
    if (!sub) return { status: 404, body: 'no such subscription' };
    if (body.length > MAX_BODY) return { status: 413, body: 'payload too large' };
    if (body.length > 0) {
      if (h['content-encoding'] !== 'aes128gcm') return { status: 400, body: 'Content-Encoding must be aes128gcm' };
      entry.payload = JSON.parse(decryptAes128gcm(body, sub.ecdh, sub.auth).toString('utf8'));
    }
    const scripted = this.scripts.get(sub.id)?.shift();
    if (scripted) return scripted;
    return { status: 201, headers: { location: `${this.url}/message/${randomBytes(6).toString('hex')}` } };
  }
}
