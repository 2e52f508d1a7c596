import type { ChannelProvider, Content, DeliveryRef, Outcome } from './channel.js';
import { ConfigError, GROUP_RECIPIENT_TYPE } from './channel.js';
import type { Fields } from './fields.js';
import { isOutcome, makeAgent, parseRetryAfter, responseDetails, sendHttp, type HttpResponse } from './http.js';

/*
 * What the group webhook channels (dingtalk, wecom, slack, discord) share: a webhook URL that is
 * itself the credential, one JSON POST per delivery to the group, mentioning the delivery's
 * recipient when it has one, and the HTTP answers they all read the same way.
 */

// A chat post is small; 10 s is ample, and the dispatcher's sendTimeout (30 s) bounds it too.
const DEFAULT_TIMEOUT_MS = 10_000;
// Mobile numbers as chat robots take them: digits, optionally a leading + and - separators.
const MOBILE = /^\+?\d[\d-]{4,23}$/;

/** Content a channel cannot turn into a post: an unknown msgType, or a body that is not the JSON it needs. */
export class UnsendableContent extends Error {}

export interface GroupWebhookSpec {
  type: string;
  /** Recipient types a post can mention; a delivery to `{type: 'group'}` mentions no one. */
  recipientTypes: readonly string[];
  rateLimit?: ChannelProvider['rateLimit'];
  /** The post's JSON body; `mention` is the recipient's value, undefined for the group. Throws UnsendableContent. */
  toPayload(content: Content, mention: string | undefined): Record<string, unknown>;
  /** Where this post goes (a signed URL is signed afresh for each post). */
  postUrl(): string;
  classify(res: HttpResponse, delivery: DeliveryRef): Outcome;
}

/**
 * Reads `providers.<name>.webhookUrl`: an http(s) URL, carrying the query parameter that holds the
 * robot's token when the provider puts it there. Errors name the key and never quote the URL.
 */
export function readWebhookUrl(f: Fields, name: string, tokenParam?: string): URL {
  const key = `providers.${name}.webhookUrl`;
  let url: URL;
  try {
    url = new URL(f.string('webhookUrl'));
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new ConfigError(key, 'must be an http(s) URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new ConfigError(key, 'must be an http(s) URL');
  if (tokenParam && !url.searchParams.get(tokenParam)) {
    throw new ConfigError(key, `must carry the robot's ${tokenParam} query parameter`);
  }
  return url;
}

function validateMobile(value: string): string | undefined {
  return MOBILE.test(value) ? undefined : 'must be a mobile number (digits, optionally a leading + and - separators)';
}

/** A plain-text post: the subject, when there is one, as its first line. */
export function joinText(subject: string, body: string): string {
  return subject === '' ? body : `${subject}\n${body}`;
}

/** The body of a JSON msgType (Slack blocks, Discord embeds): a JSON array, or the post cannot be made. */
export function parseJsonArray(body: string, msgType: string): unknown[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    parsed = undefined;
  }
  if (!Array.isArray(parsed)) throw new UnsendableContent(`msgType ${msgType} needs a body that renders to a JSON array`);
  return parsed;
}

export function unknownMsgType(msgType: string, known: readonly string[]): UnsendableContent {
  return new UnsendableContent(`msgType "${msgType}" is not supported by this channel (use ${known.join(' or ')})`);
}

/** 408, 429 and 5xx are transient for every group webhook: retry, not sooner than its Retry-After. */
export function transientHttp(res: HttpResponse, error = `HTTP ${res.status}`): Outcome | undefined {
  if (res.status !== 408 && res.status !== 429 && res.status < 500) return undefined;
  return {
    kind: 'retry',
    error,
    retryAfterMs: parseRetryAfter(res.headers['retry-after']),
    details: responseDetails(res),
  };
}

/**
 * Robots that answer HTTP 200 with `{"errcode": …, "errmsg": …}` whatever happened: 0 is sent,
 * any other code is the channel's to classify. A 200 without an errcode is failed rather than
 * retried, since the post may have gone through and a retry could post it twice.
 */
export function classifyErrcode(
  res: HttpResponse,
  classify: (errcode: number, error: string, details: Record<string, unknown>) => Outcome,
): Outcome {
  const transient = transientHttp(res);
  if (transient) return transient;
  const details = responseDetails(res);
  if (res.status !== 200) return { kind: 'failed', error: `HTTP ${res.status}`, details };
  let answer: { errcode?: unknown; errmsg?: unknown } | undefined;
  try {
    answer = JSON.parse(res.body) as typeof answer;
  } catch {
    answer = undefined;
  }
  if (typeof answer?.errcode !== 'number') return { kind: 'failed', error: 'answer carries no errcode', details };
  if (answer.errcode === 0) return { kind: 'sent', details };
  return classify(answer.errcode, `errcode ${answer.errcode}: ${String(answer.errmsg ?? '')}`, details);
}

/** Builds a group channel provider from what makes its channel different. */
export function makeGroupWebhook(name: string, f: Fields, spec: GroupWebhookSpec): ChannelProvider {
  const agent = makeAgent(f.optionalNumber('timeoutMs', 1) ?? DEFAULT_TIMEOUT_MS);
  return {
    name,
    type: spec.type,
    recipientTypes: spec.recipientTypes,
    postsToGroup: true,
    rateLimit: spec.rateLimit,
    // Only mobile numbers are ever mentioned (the other channels post to the group alone).
    validateTarget: (recipient) => validateMobile(recipient.value),
    async send({ delivery, content, signal }): Promise<Outcome> {
      const { recipient } = delivery;
      const toGroup = recipient.type === GROUP_RECIPIENT_TYPE;
      if (!toGroup && !spec.recipientTypes.includes(recipient.type)) {
        return { kind: 'failed', error: `${spec.type} cannot mention a recipient of type ${recipient.type}` };
      }
      let payload: Record<string, unknown>;
      try {
        payload = spec.toPayload(content, toGroup ? undefined : recipient.value);
      } catch (error) {
        if (error instanceof UnsendableContent) return { kind: 'failed', error: error.message };
        throw error;
      }
      const res = await sendHttp(agent, spec.postUrl(), {
        headers: { 'content-type': 'application/json; charset=utf-8', 'user-agent': 'Herald' },
        body: JSON.stringify(payload),
        signal,
      });
      return isOutcome(res) ? res : spec.classify(res, delivery);
    },
    close: () => agent.close(),
  };
}
