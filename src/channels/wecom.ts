import type { ChannelModule, ChannelProvider, Content, Outcome } from './channel.js';
import { Fields } from './fields.js';
import { classifyErrcode, joinText, makeGroupWebhook, readWebhookUrl, UnsendableContent, unknownMsgType } from './group-webhook.js';

// WeCom takes at most 20 messages a minute per robot and answers 45009 past it until the minute turns.
const RATE_LIMIT = { limit: 20, intervalMs: 60_000 };
const MSG_TYPES = ['text', 'markdown'] as const;

/** Milliseconds until the next minute starts, when a throttled robot may post again. */
function untilNextMinute(now = Date.now()): number {
  return 60_000 - (now % 60_000);
}

function toWeComPayload(content: Content, mobile: string | undefined): Record<string, unknown> {
  switch (content.msgType || 'text') {
    case 'text':
      // WeCom appends the mention itself; the text needs no @number.
      return {
        msgtype: 'text',
        text: { content: joinText(content.subject, content.body), mentioned_mobile_list: mobile === undefined ? undefined : [mobile] },
      };
    case 'markdown':
      // Markdown posts have no mobile mention list: posting one unmentioned copy per recipient
      // would repeat the same message in the group, so refuse and say what works.
      if (mobile !== undefined) {
        throw new UnsendableContent('WeCom markdown cannot mention a phone number: use msgType text, or send without phone recipients');
      }
      return { msgtype: 'markdown', markdown: { content: content.body } };
    default:
      throw unknownMsgType(content.msgType, MSG_TYPES);
  }
}

function classifyWeCom(errcode: number, error: string, details: Record<string, unknown>): Outcome {
  switch (errcode) {
    case 45009:
      return { kind: 'retry', error, retryAfterMs: untilNextMinute(), details };
    case -1: // the platform is busy
      return { kind: 'retry', error, details };
    case 93000:
      // The key names no robot (removed from its group, or a wrong URL): no retry can make it
      // valid, and it is the channel's one address, so it is dead until the configuration changes.
      return { kind: 'dead', error, details };
    default:
      // 40008 message type, 40058 parameter (e.g. content over 2048/4096 bytes), 44004 empty content.
      return { kind: 'failed', error, details };
  }
}

export const wecomModule: ChannelModule = {
  type: 'wecom',
  create(name, raw): ChannelProvider {
    const f = new Fields(`providers.${name}`, raw);
    const webhookUrl = readWebhookUrl(f, name, 'key').href;
    return makeGroupWebhook(name, f, {
      type: 'wecom',
      recipientTypes: ['phone'],
      rateLimit: RATE_LIMIT,
      toPayload: toWeComPayload,
      postUrl: () => webhookUrl,
      classify: (res) => classifyErrcode(res, classifyWeCom),
    });
  },
};
