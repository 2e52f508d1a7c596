import type { ChannelModule, ChannelProvider, Outcome, Recipient, SendRequest } from './channel.js';
import { ConfigError } from './channel.js';
import { Fields } from './fields.js';
import { isOutcome, makeAgent, parseRetryAfter, responseDetails, sendHttp, type HttpResponse } from './http.js';

const DEFAULT_BASE_URL = 'https://api.twilio.com';
const TIMEOUT_MS = 15_000;
const ACCOUNT_SID = /^AC[0-9a-fA-F]{32}$/;
const E164 = /^\+[1-9]\d{1,14}$/;
const MODES = ['sms', 'voice'] as const;
type Mode = (typeof MODES)[number];

// Twilio error codes (spec §9.3) that say the number cannot receive: invalid (21211), replied
// STOP (21610), unroutable (21612), not a mobile (21614) or a landline (21635).
const DEAD_CODES = new Set([21211, 21610, 21612, 21614, 21635]);
// Too many requests / concurrency limit.
const RETRY_CODES = new Set([20429]);

interface TwilioReply {
  sid?: string;
  status?: string | number;
  code?: number;
  message?: string;
}

/**
 * The channel's mode when `mode` is not configured: a channel named `voice` places calls, any
 * other channel sends messages. One provider can so serve both an `sms` and a `voice` channel.
 */
export function twilioMode(configured: Mode | undefined, channel: string): Mode {
  return configured ?? (channel === 'voice' ? 'voice' : 'sms');
}

const XML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };

/** The inline TwiML a call reads out. */
export function toTwiml(text: string): string {
  return `<Response><Say>${text.replace(/[&<>"']/g, (c) => XML_ESCAPES[c]!)}</Say></Response>`;
}

/**
 * What the REST API answered: 201 is queued (sent, as far as Herald can tell; delivery receipts
 * come later by StatusCallback). Errors carry a code: the dead-number codes mark the address
 * dead, 20429/HTTP 429 and 5xx retry, authentication (20003/401) and every other 4xx fail.
 */
export function classifyTwilioResponse(res: HttpResponse): Outcome {
  let reply: TwilioReply = {};
  try {
    reply = (JSON.parse(res.body) as TwilioReply | null) ?? {};
  } catch {
    // a gateway's HTML error page: the HTTP status decides
  }
  if (res.status >= 200 && res.status < 300) return { kind: 'sent', details: { status: res.status, sid: reply.sid, state: reply.status } };
  const details = { ...responseDetails(res), code: reply.code };
  const error = `HTTP ${res.status}${reply.code ? ` (${reply.code})` : ''}${reply.message ? `: ${reply.message}` : ''}`;
  if (reply.code !== undefined && DEAD_CODES.has(reply.code)) return { kind: 'dead', error, details };
  if (res.status === 429 || res.status >= 500 || (reply.code !== undefined && RETRY_CODES.has(reply.code))) {
    return { kind: 'retry', error, retryAfterMs: parseRetryAfter(res.headers['retry-after']), details };
  }
  if (res.status === 401) return { kind: 'failed', error: `${error} (check accountSid and authToken)`, details };
  return { kind: 'failed', error, details };
}

function validatePhone(recipient: Recipient): string | undefined {
  return E164.test(recipient.value) ? undefined : 'must be an E.164 phone number like +14155550100';
}

export const twilioModule: ChannelModule = {
  type: 'twilio',
  create(name, raw): ChannelProvider {
    const f = new Fields(`providers.${name}`, raw);
    const accountSid = f.string('accountSid');
    if (!ACCOUNT_SID.test(accountSid)) throw new ConfigError(`providers.${name}.accountSid`, 'must be AC followed by 32 hex digits');
    const authToken = f.string('authToken');
    const from = f.string('from');
    if (!E164.test(from)) throw new ConfigError(`providers.${name}.from`, 'must be an E.164 phone number like +14155550100');
    const mode = f.optionalString('mode') === undefined ? undefined : f.oneOf('mode', MODES, 'sms');
    const baseUrl = (f.optionalString('baseUrl') ?? DEFAULT_BASE_URL).replace(/\/+$/, '');
    const accountUrl = `${baseUrl}/2010-04-01/Accounts/${accountSid}`;
    const authorization = `Basic ${Buffer.from(`${accountSid}:${authToken}`).toString('base64')}`;
    const agent = makeAgent(TIMEOUT_MS);
    return {
      name,
      type: 'twilio',
      recipientTypes: ['phone'],
      validateTarget: validatePhone,
      async send({ delivery, content, signal }: SendRequest): Promise<Outcome> {
        const voice = twilioMode(mode, delivery.channel) === 'voice';
        const form = new URLSearchParams({ To: delivery.recipient.value, From: from });
        form.set(voice ? 'Twiml' : 'Body', voice ? toTwiml(content.body) : content.body);
        const res = await sendHttp(agent, `${accountUrl}/${voice ? 'Calls' : 'Messages'}.json`, {
          headers: { authorization, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
          body: form.toString(),
          signal,
        });
        return isOutcome(res) ? res : classifyTwilioResponse(res);
      },
      close: () => agent.close(),
    };
  },
};
