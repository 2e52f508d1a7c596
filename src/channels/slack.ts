import type { ChannelModule, ChannelProvider, Content, Outcome } from './channel.js';
import { Fields } from './fields.js';
import type { HttpResponse } from './http.js';
import { responseDetails } from './http.js';
import { joinText, makeGroupWebhook, parseJsonArray, readWebhookUrl, transientHttp, unknownMsgType } from './group-webhook.js';

// Slack allows about one message a second per incoming webhook, with short bursts: a minute's
// budget of 60 keeps the average without holding back a burst.
const RATE_LIMIT = { limit: 60, intervalMs: 60_000 };
const MSG_TYPES = ['text', 'blocks'] as const;

/** Answers that mean the webhook, its channel or its workspace is gone (or revoked). */
const GONE = new Set([
  'user_not_found',
  'channel_not_found',
  'channel_is_archived',
  'no_service',
  'no_service_id',
  'no_active_hooks',
  'no_team',
  'team_disabled',
  'invalid_token',
]);

function toSlackPayload(content: Content): Record<string, unknown> {
  switch (content.msgType || 'text') {
    case 'text':
      return { text: joinText(content.subject, content.body) };
    case 'blocks':
      // The text is the fallback shown in notifications when the blocks cannot be.
      return { text: content.subject || undefined, blocks: parseJsonArray(content.body, 'blocks') };
    default:
      throw unknownMsgType(content.msgType, MSG_TYPES);
  }
}

/** Slack answers in plain text (`ok`, or an error code); the code decides, the status only backs it up. */
function classifySlack(res: HttpResponse): Outcome {
  const details = responseDetails(res);
  const code = res.body.trim();
  if (res.status === 200 && code === 'ok') return { kind: 'sent', details };
  const error = `HTTP ${res.status}: ${code.slice(0, 100)}`;
  if (GONE.has(code)) return { kind: 'dead', error, details };
  if (code === 'service_unavailable') return { kind: 'retry', error, details };
  const transient = transientHttp(res, error);
  if (transient) return transient;
  // A deleted webhook answering with a code not listed above is still gone.
  if (res.status === 404 || res.status === 410) return { kind: 'dead', error, details };
  // invalid_payload, no_text, too_many_attachments, action_prohibited, posting_to_general_channel_denied, …
  return { kind: 'failed', error, details };
}

export const slackModule: ChannelModule = {
  type: 'slack',
  create(name, raw): ChannelProvider {
    const f = new Fields(`providers.${name}`, raw);
    const webhookUrl = readWebhookUrl(f, name).href;
    return makeGroupWebhook(name, f, {
      type: 'slack',
      // The webhook posts to its one channel; no recipient maps, so each notification is one post.
      recipientTypes: [],
      rateLimit: RATE_LIMIT,
      toPayload: toSlackPayload,
      postUrl: () => webhookUrl,
      classify: classifySlack,
    });
  },
};
