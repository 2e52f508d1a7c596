import type { ChannelModule, ChannelProvider, Outcome, Recipient, SendRequest } from './channel.js';
import { ConfigError } from './channel.js';
import { Fields } from './fields.js';
import { isOutcome, makeAgent, parseRetryAfter, responseDetails, sendHttp, type HttpResponse } from './http.js';

const DEFAULT_BASE_URL = 'https://api.telegram.org';
const TIMEOUT_MS = 15_000;
// The token BotFather hands out: the bot's numeric id, a colon, then the secret.
const BOT_TOKEN = /^\d+:[A-Za-z0-9_-]+$/;
// A numeric chat id (groups and channels are negative; up to 52 significant bits) or @channelusername.
const CHAT_ID = /^(-?\d{1,16}|@[A-Za-z][A-Za-z0-9_]{3,31})$/;
const MASK = '<bot-token>';

/** template msgType → parse_mode; an empty msgType sends plain text. */
const PARSE_MODES: Record<string, string | undefined> = { '': undefined, markdownv2: 'MarkdownV2', html: 'HTML' };

interface TelegramReply {
  ok?: boolean;
  result?: { message_id?: number };
  error_code?: number;
  description?: string;
  parameters?: { retry_after?: number; migrate_to_chat_id?: number };
}

function parseReply(res: HttpResponse): TelegramReply {
  try {
    return (JSON.parse(res.body) as TelegramReply | null) ?? {};
  } catch {
    return {};
  }
}

/**
 * What the Bot API answered: ok:true is sent; 429 waits `parameters.retry_after` seconds exactly;
 * 403 (blocked, kicked, deactivated, never started) and 400 "chat not found" are a dead chat id;
 * other 400s are this message's fault (too long, bad entities); 401 and 404 are a bad token;
 * 5xx and anything unreadable from a gateway are transient.
 */
export function classifyTelegramResponse(res: HttpResponse): Outcome {
  const reply = parseReply(res);
  if (res.status === 200 && reply.ok === true) {
    return { kind: 'sent', details: { status: res.status, messageId: reply.result?.message_id } };
  }
  const details = responseDetails(res);
  const error = `HTTP ${res.status}${reply.description ? `: ${reply.description}` : ''}`;
  if (res.status === 429) {
    const hint = reply.parameters?.retry_after;
    const retryAfterMs = parseRetryAfter(hint === undefined ? res.headers['retry-after'] : String(hint));
    return { kind: 'retry', error, retryAfterMs, details };
  }
  if (res.status >= 500) return { kind: 'retry', error, retryAfterMs: parseRetryAfter(res.headers['retry-after']), details };
  if (res.status === 403) return { kind: 'dead', error, details };
  if (res.status === 400 && /chat not found/i.test(reply.description ?? '')) return { kind: 'dead', error, details };
  if (res.status === 401 || res.status === 404) return { kind: 'failed', error: `${error} (check botToken)`, details };
  return { kind: 'failed', error, details };
}

/** Replaces the bot token wherever it appears, so no error, detail or log line carries it. */
function withoutToken(outcome: Outcome, token: string): Outcome {
  // The token's alphabet (digits, letters, ':', '_', '-') needs no JSON escaping.
  const text = JSON.stringify(outcome);
  return text.includes(token) ? (JSON.parse(text.replaceAll(token, MASK)) as Outcome) : outcome;
}

function validateChatId(recipient: Recipient): string | undefined {
  return CHAT_ID.test(recipient.value) ? undefined : 'must be a numeric chat id or @channelusername';
}

export const telegramModule: ChannelModule = {
  type: 'telegram',
  create(name, raw): ChannelProvider {
    const f = new Fields(`providers.${name}`, raw);
    const token = f.string('botToken');
    if (!BOT_TOKEN.test(token)) throw new ConfigError(`providers.${name}.botToken`, 'must look like 123456789:AAE… (from @BotFather)');
    const baseUrl = (f.optionalString('baseUrl') ?? DEFAULT_BASE_URL).replace(/\/+$/, '');
    // The token is part of the path: this URL must never be logged or returned.
    const sendMessageUrl = `${baseUrl}/bot${token}/sendMessage`;
    const agent = makeAgent(TIMEOUT_MS);

    const post = (chatId: string, text: string, parseMode: string | undefined, signal: AbortSignal) =>
      sendHttp(agent, sendMessageUrl, {
        headers: { 'content-type': 'application/json' },
        // chat_id as a string: ids may exceed 2^53 in future and the API accepts either.
        body: JSON.stringify({ chat_id: chatId, text, ...(parseMode ? { parse_mode: parseMode } : {}) }),
        signal,
      });

    return {
      name,
      type: 'telegram',
      recipientTypes: ['telegram_chat_id'],
      // The Bot API's broadcast limit: about 30 messages a second per bot.
      rateLimit: { limit: 30, intervalMs: 1000 },
      validateTarget: validateChatId,
      async send({ delivery, content, signal }: SendRequest): Promise<Outcome> {
        const mode = content.msgType.toLowerCase();
        if (!Object.hasOwn(PARSE_MODES, mode)) {
          return { kind: 'failed', error: `msgType "${content.msgType}" is not MarkdownV2, HTML or empty` };
        }
        const parseMode = PARSE_MODES[mode];
        let res = await post(delivery.recipient.value, content.body, parseMode, signal);
        // A group that became a supergroup has a new id: send there at once, and say so in the
        // details so the app can store the new id.
        let migratedTo: string | undefined;
        if (!isOutcome(res) && res.status === 400) {
          const next = parseReply(res).parameters?.migrate_to_chat_id;
          if (next !== undefined) {
            migratedTo = String(next);
            res = await post(migratedTo, content.body, parseMode, signal);
          }
        }
        let outcome = isOutcome(res) ? res : classifyTelegramResponse(res);
        if (migratedTo) outcome = { ...outcome, details: { ...outcome.details, migratedToChatId: migratedTo } };
        return withoutToken(outcome, token);
      },
      close: () => agent.close(),
    };
  },
};
