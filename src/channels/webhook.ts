import { createHmac } from 'node:crypto';
import type { ChannelModule, ChannelProvider, Outcome, Recipient, SendRequest } from './channel.js';
import { ConfigError } from './channel.js';
import { Fields } from './fields.js';
import { isOutcome, makeAgent, parseRetryAfter, responseDetails, sendHttp, type HttpResponse } from './http.js';

const DEFAULT_TIMEOUT_MS = 15_000;

/** Decodes a `whsec_<base64>` secret into its key bytes. */
export function decodeWebhookSecret(secret: string): Buffer {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  if (!secret.startsWith('whsec_') || key.length < 16) throw new Error('must be whsec_ followed by base64 key bytes');
  return key;
}

/** Standard Webhooks v1 signature over `id.timestamp.body`. */
export function signWebhook(key: Buffer, id: string, timestamp: number, body: string): string {
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

/**
 * Standard Webhooks answers: 2xx sent; 410 Gone means the endpoint is gone (dead address); 408, 429
 * and 5xx are transient; any other answer will not change on a retry.
 */
export function classifyWebhookResponse(res: HttpResponse): Outcome {
  const details = responseDetails(res);
  if (res.status >= 200 && res.status < 300) return { kind: 'sent', details };
  const error = `HTTP ${res.status}`;
  if (res.status === 410) return { kind: 'dead', error: `${error}: endpoint gone`, details };
  if (res.status === 408 || res.status === 429 || res.status >= 500) {
    return { kind: 'retry', error, retryAfterMs: parseRetryAfter(res.headers['retry-after']), details };
  }
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
          id: delivery.id,
          notificationId: delivery.notificationId,
          channel: delivery.channel,
          recipient: delivery.recipient,
          subject: content.subject,
          body: content.body,
          params: content.params,
        });
        // Stable across retries, so receivers can drop a repeat.
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
