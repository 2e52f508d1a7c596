import { createHmac } from 'node:crypto';
import type { ChannelModule, ChannelProvider, Outcome, Recipient, SendRequest } from './channel.js';
import { ConfigError } from './channel.js';
import { Fields } from './fields.js';
import { isOutcome, makeAgent, parseRetryAfter, responseDetails, sendHttp, type HttpResponse } from './http.js';

// Standard Webhooks suggests a 15–30 s timeout; the dispatcher's sendTimeout (30 s) bounds it too.
const DEFAULT_TIMEOUT_MS = 15_000;
// The spec's key length, in bytes, of the secret behind `whsec_`.
const MIN_KEY_BYTES = 24;
const MAX_KEY_BYTES = 64;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Decodes a `whsec_<base64>` secret into its key bytes; the error never quotes the secret. */
export function decodeWebhookSecret(secret: string): Buffer {
  const encoded = secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : undefined;
  // Buffer.from(…, 'base64') skips characters it does not know, so check the alphabet first.
  if (encoded === undefined || !BASE64.test(encoded)) throw new Error('must be whsec_ followed by base64 key bytes');
  const key = Buffer.from(encoded, 'base64');
  if (key.length < MIN_KEY_BYTES || key.length > MAX_KEY_BYTES) {
    throw new Error(`must hold ${MIN_KEY_BYTES} to ${MAX_KEY_BYTES} key bytes`);
  }
  return key;
}

/** Standard Webhooks v1 signature over `id.timestamp.body`. */
export function signWebhook(key: Buffer, id: string, timestamp: number, body: string): string {
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

/**
 * What an endpoint's answer means: 2xx sent; 410 Gone is the endpoint saying it is gone for good
 * (dead address); 408, 429 and 5xx are transient, after its Retry-After when it gave one. Any other
 * answer (other 4xx, or a 3xx, since redirects are not followed) will be the same on a retry.
 */
export function classifyWebhookResponse(res: HttpResponse): Outcome {
  const details = responseDetails(res);
  if (res.status >= 200 && res.status < 300) return { kind: 'sent', details };
  const error = `HTTP ${res.status}`;
  if (res.status === 410) return { kind: 'dead', error: `${error}: endpoint gone`, details };
  if (res.status === 408 || res.status === 429 || res.status >= 500) {
    return { kind: 'retry', error, retryAfterMs: parseRetryAfter(res.headers['retry-after']), details };
  }
  if (res.status >= 300 && res.status < 400) return { kind: 'failed', error: `${error}: redirects are not followed`, details };
  return { kind: 'failed', error, details };
}

function validateUrl(recipient: Recipient): string | undefined {
  try {
    const url = new URL(recipient.value);
    return url.protocol === 'http:' || url.protocol === 'https:' ? undefined : 'must be an http(s) URL';
  } catch {
    return 'must be an http(s) URL';
  }
}

export const webhookModule: ChannelModule = {
  type: 'webhook',
  create(name, raw): ChannelProvider {
    const f = new Fields(`providers.${name}`, raw);
    const secret = f.string('secret');
    let key: Buffer;
    try {
      key = decodeWebhookSecret(secret);
    } catch (error) {
      throw new ConfigError(`providers.${name}.secret`, (error as Error).message);
    }
    const timeoutMs = f.optionalNumber('timeoutMs', 1) ?? DEFAULT_TIMEOUT_MS;
    const agent = makeAgent(timeoutMs);
    return {
      name,
      type: 'webhook',
      recipientTypes: ['webhook'],
      validateTarget: validateUrl,
      async send({ delivery, content, signal }: SendRequest): Promise<Outcome> {
        const body = JSON.stringify({
          deliveryId: delivery.id,
          notificationId: delivery.notificationId,
          channel: delivery.channel,
          recipient: delivery.recipient,
          subject: content.subject,
          body: content.body,
          params: content.params,
        });
        // Stable across retries, so receivers can drop a repeat; the timestamp is this attempt's.
        const id = `msg_${delivery.id}`;
        const timestamp = Math.floor(Date.now() / 1000);
        const res = await sendHttp(agent, delivery.recipient.value, {
          headers: {
            'content-type': 'application/json',
            'user-agent': 'Herald-Webhooks/1',
            'webhook-id': id,
            'webhook-timestamp': String(timestamp),
            'webhook-signature': signWebhook(key, id, timestamp, body),
          },
          body,
          signal,
        });
        return isOutcome(res) ? res : classifyWebhookResponse(res);
      },
      close: () => agent.close(),
    };
  },
};
