import { createHmac } from 'node:crypto';
import type { ChannelModule, ChannelProvider, Content, Outcome } from './channel.js';
import { Fields } from './fields.js';
import { classifyErrcode, joinText, makeGroupWebhook, readWebhookUrl, unknownMsgType } from './group-webhook.js';

// DingTalk takes at most 20 messages a minute per robot; past that it throttles the robot for
// 10 minutes (errcode 130101), so Herald keeps under it rather than find out.
const RATE_LIMIT = { limit: 20, intervalMs: 60_000 };
const THROTTLED_MS = 10 * 60_000;
const MSG_TYPES = ['text', 'markdown'] as const;

/** The signature of a signed robot's request: base64(HMAC-SHA256(key = secret, message = timestamp + "\n" + secret)). */
export function signDingTalk(secret: string, timestampMs: number): string {
  return createHmac('sha256', secret).update(`${timestampMs}\n${secret}`).digest('base64');
}

/**
 * A mention needs both the number in `at.atMobiles` and `@number` in the text, or the robot
 * posts the text without pinging anyone.
 */
function toDingTalkPayload(content: Content, mobile: string | undefined): Record<string, unknown> {
  const at = { atMobiles: mobile === undefined ? [] : [mobile], isAtAll: false };
  const tag = mobile === undefined ? '' : `@${mobile}`;
  const mention = (text: string, separator: string) => (tag === '' || text.includes(tag) ? text : `${text}${separator}${tag}`);
  switch (content.msgType || 'text') {
    case 'text':
      return { msgtype: 'text', text: { content: mention(joinText(content.subject, content.body), ' ') }, at };
    case 'markdown':
      // The title is what the chat list and the phone notification show.
      return {
        msgtype: 'markdown',
        markdown: { title: content.subject || content.body.split('\n', 1)[0], text: mention(content.body, '\n\n') },
        at,
      };
    default:
      throw unknownMsgType(content.msgType, MSG_TYPES);
  }
}

function classifyDingTalk(errcode: number, error: string, details: Record<string, unknown>, attempt: number): Outcome {
  switch (errcode) {
    case 130101:
      return { kind: 'retry', error, retryAfterMs: THROTTLED_MS, details };
    case -1: // the platform is busy
      return { kind: 'retry', error, details };
    case 310000:
      // Sign, keyword and IP allow-list refusals share this code. A refused timestamp means the
      // clocks are over an hour apart; one re-signed try tells a blip from a wrong clock.
      if (/timestamp/i.test(error) && attempt === 1) return { kind: 'retry', error, details };
      return { kind: 'failed', error, details };
    case 300001:
      // "token is not exist" / "robot 不存在": the robot was removed. Otherwise a parameter error.
      return /token|robot/i.test(error) ? { kind: 'dead', error, details } : { kind: 'failed', error, details };
    default:
      return { kind: 'failed', error, details };
  }
}

export const dingtalkModule: ChannelModule = {
  type: 'dingtalk',
  create(name, raw): ChannelProvider {
    const f = new Fields(`providers.${name}`, raw);
    const webhookUrl = readWebhookUrl(f, name, 'access_token');
    // Optional: a robot may be secured by keywords or an IP allow-list instead of signing.
    const secret = f.optionalString('secret') || undefined;
    return makeGroupWebhook(name, f, {
      type: 'dingtalk',
      recipientTypes: ['phone'],
      rateLimit: RATE_LIMIT,
      toPayload: toDingTalkPayload,
      postUrl() {
        if (secret === undefined) return webhookUrl.href;
        const url = new URL(webhookUrl);
        const timestamp = Date.now();
        url.searchParams.set('timestamp', String(timestamp));
        url.searchParams.set('sign', signDingTalk(secret, timestamp));
        return url.href;
      },
      classify: (res, delivery) =>
        classifyErrcode(res, (errcode, error, details) => classifyDingTalk(errcode, error, details, delivery.attempt)),
    });
  },
};
