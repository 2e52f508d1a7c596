import type { ChannelModule, ChannelProvider, Content, Outcome } from './channel.js';
import { Fields } from './fields.js';
import type { HttpResponse } from './http.js';
import { parseRetryAfter, responseDetails } from './http.js';
import { joinText, makeGroupWebhook, parseJsonArray, readWebhookUrl, transientHttp, unknownMsgType } from './group-webhook.js';

const MSG_TYPES = ['text', 'embed', 'embeds'] as const;
// Template parameters come from callers: a value such as "@everyone" must not ping a whole server.
const NO_PINGS = { parse: [] };

function toDiscordPayload(content: Content): Record<string, unknown> {
  switch (content.msgType || 'text') {
    case 'text':
      return { content: joinText(content.subject, content.body), allowed_mentions: NO_PINGS };
    case 'embed':
      return { embeds: [{ title: content.subject || undefined, description: content.body }], allowed_mentions: NO_PINGS };
    case 'embeds':
      return { content: content.subject || undefined, embeds: parseJsonArray(content.body, 'embeds'), allowed_mentions: NO_PINGS };
    default:
      throw unknownMsgType(content.msgType, MSG_TYPES);
  }
}

/** Discord's JSON error, `{"code": …, "message": …}`, as one line, and its retry_after when it has one. */
function readDiscordError(res: HttpResponse): { error: string; retryAfter?: unknown } {
  let answer: { message?: unknown; code?: unknown; retry_after?: unknown } | null;
  try {
    answer = JSON.parse(res.body) as typeof answer;
  } catch {
    answer = null;
  }
  if (typeof answer !== 'object' || answer === null) return { error: `HTTP ${res.status}` };
  const said = [answer.code, answer.message].filter((x) => x !== undefined && x !== null && x !== '').join(' ');
  return { error: said === '' ? `HTTP ${res.status}` : `HTTP ${res.status}: ${said}`, retryAfter: answer.retry_after };
}

function classifyDiscord(res: HttpResponse): Outcome {
  const details = responseDetails(res);
  // 204 by default; 200 with the message when the URL asks for ?wait=true.
  if (res.status === 200 || res.status === 204) return { kind: 'sent', details };
  const { error, retryAfter } = readDiscordError(res);
  if (res.status === 429) {
    // The body's retry_after has decimals (seconds); the Retry-After header is the fallback.
    const fromBody = typeof retryAfter === 'number' ? parseRetryAfter(String(retryAfter)) : undefined;
    return { kind: 'retry', error, retryAfterMs: fromBody ?? parseRetryAfter(res.headers['retry-after']), details };
  }
  const transient = transientHttp(res, error);
  if (transient) return transient;
  // 404 Unknown Webhook (10015): deleted, never to be used again; 401 Invalid Webhook Token (50027): its token was reset.
  if (res.status === 404 || res.status === 401) return { kind: 'dead', error, details };
  // 400 Invalid Form Body (50035), Cannot send an empty message (50006), …
  return { kind: 'failed', error, details };
}

export const discordModule: ChannelModule = {
  type: 'discord',
  create(name, raw): ChannelProvider {
    const f = new Fields(`providers.${name}`, raw);
    const webhookUrl = readWebhookUrl(f, name).href;
    return makeGroupWebhook(name, f, {
      type: 'discord',
      // The webhook posts to its one channel; no recipient maps, so each notification is one post.
      recipientTypes: [],
      // No fixed rate is declared: Discord publishes none per webhook and says to follow each
      // answer's rate-limit headers, which the 429 retry does.
      toPayload: toDiscordPayload,
      postUrl: () => webhookUrl,
      classify: classifyDiscord,
    });
  },
};
