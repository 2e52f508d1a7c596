import type { ChannelModule, ChannelProvider, Outcome, SendRequest } from './channel.js';
import { ConfigError } from './channel.js';
import { Fields } from './fields.js';
import { classifyFeishuAnswer, FeishuApi } from './feishu-api.js';
import { FEISHU_MSG_TYPES, toFeishuContent, validateFeishuRecipient, type FeishuContent } from './feishu-content.js';
import { FeishuImages } from './feishu-images.js';
import { makeAgent } from './http.js';

const DEFAULT_BASE_URL = 'https://open.feishu.cn';
const DEFAULT_TIMEOUT_MS = 15_000;
// Message create allows an app 1000 requests a minute and 50 a second; 50 every 3 s stays under both.
const RATE_LIMIT = { limit: 50, intervalMs: 3_000 };
const RECEIVE_ID_TYPES = ['open_id', 'user_id', 'union_id', 'email'] as const;
type ReceiveIdType = (typeof RECEIVE_ID_TYPES)[number];
const URGENT_TYPES = ['app', 'sms', 'phone'] as const;
type UrgentType = (typeof URGENT_TYPES)[number];
// Feishu's open_ids and union_ids carry these prefixes; a user_id is whatever the tenant chose.
const ID_PREFIX: Readonly<Record<ReceiveIdType, string>> = { open_id: 'ou_', union_id: 'on_', user_id: '', email: '' };

/** The `content` of an im/v1 message: text `{text}`, a post's locale map, or the card itself. */
function toMessageContent(content: FeishuContent): Record<string, unknown> {
  if (content.msgType === 'text') return { text: content.text };
  return content.msgType === 'post' ? content.post : content.card;
}

function readUrgent(f: Fields, prefix: string, receiveIdType: ReceiveIdType): UrgentType | undefined {
  const urgentType = f.optionalString('urgentType') || undefined;
  if (urgentType !== undefined && !URGENT_TYPES.includes(urgentType as UrgentType)) {
    throw new ConfigError(`${prefix}.urgentType`, `must be ${URGENT_TYPES.join(', ')} or empty`);
  }
  // The reminder names the recipient by the id the message was sent to, so the two types agree;
  // the urgent APIs take open_id, user_id or union_id, never an email address.
  const urgentUserIdType = f.optionalString('urgentUserIdType') || undefined;
  if (urgentType && receiveIdType === 'email') {
    throw new ConfigError(`${prefix}.urgentType`, 'needs receiveIdType open_id, user_id or union_id: urgent reminders name users by id, not email');
  }
  if (urgentUserIdType !== undefined && receiveIdType !== 'email' && urgentUserIdType !== receiveIdType) {
    throw new ConfigError(`${prefix}.urgentUserIdType`, `must be ${receiveIdType}, the receiveIdType the recipient's id is sent as`);
  }
  return urgentType as UrgentType | undefined;
}

/**
 * Buzzes the recipient of a sent message; returns why it could not, if so. The message is out
 * already, so this never fails the delivery: the caller records the reason as `urgent_error`.
 */
async function sendUrgent(
  api: FeishuApi,
  urgentType: UrgentType,
  userIdType: ReceiveIdType,
  messageId: string,
  userId: string,
  signal: AbortSignal,
): Promise<string | undefined> {
  const what = `urgent_${urgentType}`;
  const path = `/open-apis/im/v1/messages/${encodeURIComponent(messageId)}/${what}?user_id_type=${userIdType}`;
  const answer = await api.call('PATCH', path, JSON.stringify({ user_id_list: [userId] }), signal);
  if ('kind' in answer) return `${what}: ${answer.error}`;
  const problem = classifyFeishuAnswer(answer);
  if (problem) return `${what}: ${problem.error}`;
  const invalid = answer.data.invalid_user_id_list;
  if (Array.isArray(invalid) && invalid.includes(userId)) return `${what}: the recipient is not in the message's chat`;
  return undefined;
}

export const feishuAppModule: ChannelModule = {
  type: 'feishu_app',
  create(name, raw): ChannelProvider {
    const prefix = `providers.${name}`;
    const f = new Fields(prefix, raw);
    const appId = f.string('appId');
    const appSecret = f.string('appSecret');
    const receiveIdType = f.oneOf('receiveIdType', RECEIVE_ID_TYPES, 'open_id');
    const msgType = f.oneOf('msgType', FEISHU_MSG_TYPES, 'text');
    const urgentType = readUrgent(f, prefix, receiveIdType);
    const baseUrl = (f.optionalString('baseUrl') || DEFAULT_BASE_URL).replace(/\/+$/, '');
    if (!/^https?:\/\//i.test(baseUrl) || !URL.canParse(baseUrl)) throw new ConfigError(`${prefix}.baseUrl`, 'must be an http(s) URL');
    const timeoutMs = f.optionalNumber('timeoutMs', 1) ?? DEFAULT_TIMEOUT_MS;
    const agent = makeAgent(timeoutMs);
    const api = new FeishuApi({ dispatcher: agent, baseUrl, appId, appSecret, timeoutMs });
    const images = new FeishuImages(api, timeoutMs);
    return {
      name,
      type: 'feishu_app',
      recipientTypes: [receiveIdType === 'email' ? 'email' : 'feishu_user_id'],
      rateLimit: RATE_LIMIT,
      validateTarget: (recipient) => validateFeishuRecipient(recipient, ID_PREFIX[receiveIdType]),
      async send({ delivery, content, signal }: SendRequest): Promise<Outcome> {
        const parsed = toFeishuContent(content, msgType);
        if (typeof parsed === 'string') return { kind: 'failed', error: parsed };
        const body = toMessageContent(parsed);
        const imageProblem = await images.resolve(body, signal);
        if (imageProblem) return imageProblem;
        const userId = delivery.recipient.value;
        const message = JSON.stringify({
          receive_id: userId,
          msg_type: parsed.msgType,
          content: JSON.stringify(body),
          // Feishu sends one message per uuid within an hour: a retry after a lost answer posts once.
          uuid: delivery.id,
        });
        const answer = await api.call('POST', `/open-apis/im/v1/messages?receive_id_type=${receiveIdType}`, message, signal);
        if ('kind' in answer) return answer;
        const problem = classifyFeishuAnswer(answer);
        if (problem) return problem;
        const messageId = answer.data.message_id;
        const details: Record<string, unknown> = { message_id: messageId, chat_id: answer.data.chat_id };
        if (urgentType) {
          const urgentError =
            typeof messageId === 'string'
              ? await sendUrgent(api, urgentType, receiveIdType, messageId, userId, signal)
              : `urgent_${urgentType}: the send answered without a message_id`;
          if (urgentError) details.urgent_error = urgentError;
          else details.urgent = urgentType;
        }
        return { kind: 'sent', details };
      },
      async close() {
        await Promise.all([agent.close(), images.close()]);
      },
    };
  },
};
