import { createHmac } from 'node:crypto';
import type { ChannelModule, ChannelProvider, Outcome, Recipient, SendRequest } from './channel.js';
import { ConfigError, GROUP_RECIPIENT_TYPE } from './channel.js';
import { Fields } from './fields.js';
import { FEISHU_MSG_TYPES, imageUrls, toFeishuContent, validateFeishuRecipient, type FeishuContent } from './feishu-content.js';
import { isOutcome, makeAgent, parseRetryAfter, responseDetails, sendHttp, type HttpResponse } from './http.js';

const DEFAULT_TIMEOUT_MS = 15_000;
// Feishu allows a bot 100 requests a minute and 5 a second; 5 every 3 s stays under both.
const RATE_LIMIT = { limit: 5, intervalMs: 3_000 };
// Code 11232 means Feishu is shedding load; its guidance is to wait at least a second.
const FREQUENCY_LIMIT_RETRY_MS = 1_000;

/**
 * The custom bot signature: base64 HMAC-SHA256 keyed with `timestamp + "\n" + secret` over an
 * empty message (the key is the string to sign, unlike most HMAC schemes).
 */
export function signFeishuWebhook(timestamp: string, secret: string): string {
  return createHmac('sha256', `${timestamp}\n${secret}`).update('').digest('base64');
}

/** What each bot error code means; the operator's fix is in the hint. */
const CODES: Readonly<Record<number, { kind: 'failed' | 'retry'; hint: string }>> = {
  9499: { kind: 'failed', hint: 'malformed body, wrong content shape or over 20 KB' },
  19002: { kind: 'failed', hint: 'msg_type refused' },
  19021: { kind: 'failed', hint: 'check the secret, and this server clock: Feishu allows 1 h of skew' },
  19022: { kind: 'failed', hint: "this server's IP is not on the bot's allow-list" },
  19024: { kind: 'failed', hint: "the message contains none of the bot's keywords" },
  11232: { kind: 'retry', hint: 'Feishu frequency limit' },
};
// Code 19001: the webhook token is unknown (bot deleted or URL wrong).
const WEBHOOK_GONE = 19001;

/**
 * Classifies a bot's answer. Feishu answers most errors with HTTP 200 and a non-zero `code`, so the
 * body decides. A deleted bot (19001) is a dead address for the group post; for a person's post it
 * fails the message but their Feishu id stays usable (the webhook is configuration, not theirs).
 */
export function classifyFeishuWebhookResponse(res: HttpResponse, toGroup: boolean): Outcome {
  const details = responseDetails(res);
  if (res.status === 429 || res.status >= 500) {
    return { kind: 'retry', error: `HTTP ${res.status}`, retryAfterMs: parseRetryAfter(res.headers['retry-after']), details };
  }
  let answer: { code?: unknown; msg?: unknown } | undefined;
  try {
    answer = JSON.parse(res.body) as typeof answer;
  } catch {
    // not JSON: judged by the status below
  }
  const code = answer?.code;
  if (typeof code !== 'number') return { kind: 'failed', error: `HTTP ${res.status}: not a Feishu bot answer`, details };
  if (code === 0) return { kind: 'sent', details };
  const error = `code ${code}: ${String(answer?.msg ?? '')}`;
  if (code === WEBHOOK_GONE) {
    return { kind: toGroup ? 'dead' : 'failed', error: `${error} (bot deleted or webhookUrl wrong)`, details };
  }
  const known = CODES[code];
  if (known?.kind === 'retry') return { kind: 'retry', error: `${error} (${known.hint})`, retryAfterMs: FREQUENCY_LIMIT_RETRY_MS, details };
  return { kind: 'failed', error: known ? `${error} (${known.hint})` : error, details };
}

/**
 * The message body for one delivery. A `feishu_user_id` recipient is mentioned (`<at user_id>` in
 * text, an `at` element in a post, `<at id>` markdown in a card). Custom bots cannot mention anyone
 * by email, so an `email` recipient is named in plain text instead; the group post mentions no one.
 */
export function toWebhookMessage(content: FeishuContent, recipient: Recipient): Record<string, unknown> {
  const id = recipient.type === 'feishu_user_id' ? recipient.value : undefined;
  const named = recipient.type === 'email' ? `@${recipient.value}` : undefined;
  switch (content.msgType) {
    case 'text': {
      const suffix = id ? ` <at user_id="${id}"></at>` : named ? ` ${named}` : '';
      return { msg_type: 'text', content: { text: content.text + suffix } };
    }
    case 'post': {
      const line = id ? [{ tag: 'at', user_id: id }] : named ? [{ tag: 'text', text: named }] : undefined;
      if (line) for (const locale of Object.values(content.post)) locale.content.push(line);
      return { msg_type: 'post', content: { post: content.post } };
    }
    case 'interactive': {
      const element = id
        ? { tag: 'div', text: { tag: 'lark_md', content: `<at id=${id}></at>` } }
        : named
          ? { tag: 'div', text: { tag: 'plain_text', content: named } }
          : undefined;
      if (element) cardElements(content.card).push(element);
      return { msg_type: 'interactive', card: content.card };
    }
  }
}

/** A card's element list: `body.elements` in card JSON 2.0, `elements` before it. */
function cardElements(card: Record<string, unknown>): unknown[] {
  let holder = card;
  if (card.schema === '2.0') {
    if (typeof card.body !== 'object' || card.body === null) card.body = {};
    holder = card.body as Record<string, unknown>;
  }
  if (!Array.isArray(holder.elements)) holder.elements = [];
  return holder.elements as unknown[];
}

export const feishuWebhookModule: ChannelModule = {
  type: 'feishu_webhook',
  create(name, raw): ChannelProvider {
    const f = new Fields(`providers.${name}`, raw);
    const webhookUrl = f.string('webhookUrl');
    // The URL is the bot's credential: the message names the key, never the value.
    if (!/^https?:\/\//i.test(webhookUrl) || !URL.canParse(webhookUrl)) {
      throw new ConfigError(`providers.${name}.webhookUrl`, 'must be an http(s) URL');
    }
    const secret = f.optionalString('secret') || undefined;
    const msgType = f.oneOf('msgType', FEISHU_MSG_TYPES, 'text');
    const agent = makeAgent(f.optionalNumber('timeoutMs', 1) ?? DEFAULT_TIMEOUT_MS);
    return {
      name,
      type: 'feishu_webhook',
      recipientTypes: ['feishu_user_id', 'email'],
      postsToGroup: true,
      rateLimit: RATE_LIMIT,
      validateTarget: (recipient) => validateFeishuRecipient(recipient),
      async send({ delivery, content, signal }: SendRequest): Promise<Outcome> {
        const parsed = toFeishuContent(content, msgType);
        if (typeof parsed === 'string') return { kind: 'failed', error: parsed };
        if (imageUrls(parsed).length > 0) {
          return { kind: 'failed', error: 'a webhook bot cannot upload images: use image keys, or the feishu_app channel for image URLs' };
        }
        const message = toWebhookMessage(parsed, delivery.recipient);
        const timestamp = String(Math.floor(Date.now() / 1000));
        const signed = secret ? { timestamp, sign: signFeishuWebhook(timestamp, secret) } : {};
        const res = await sendHttp(agent, webhookUrl, {
          headers: { 'content-type': 'application/json; charset=utf-8' },
          body: JSON.stringify({ ...signed, ...message }),
          signal,
        });
        if (isOutcome(res)) return res;
        return classifyFeishuWebhookResponse(res, delivery.recipient.type === GROUP_RECIPIENT_TYPE);
      },
      close: () => agent.close(),
    };
  },
};
