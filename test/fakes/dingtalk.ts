import { createHmac, timingSafeEqual } from 'node:crypto';
import { json, PostCounter, startChatFake, type ChatFake, type FakeAnswer, type FakeRequest } from './chat-webhooks.js';

/**
 * A fake DingTalk custom robot endpoint (POST /robot/send?access_token=…): checks the token, the
 * signature of signed robots, the body's shape by msgtype, keywords and the 20-a-minute limit, and
 * answers as DingTalk does, always HTTP 200 with {errcode, errmsg}.
 */

export interface DingTalkRobot {
  token: string;
  /** The robot signs (加签) with this `SEC…` secret. */
  secret?: string;
  /** The robot's keyword security setting: a post must contain one of these. */
  keywords?: string[];
  /** Posts a minute before 130101; DingTalk's is 20. */
  perMinute?: number;
}

export interface DingTalkFake extends ChatFake {
  webhookUrl(token: string): string;
}

// DingTalk accepts a signed request's timestamp up to an hour either side of its clock.
const TIMESTAMP_WINDOW_MS = 60 * 60 * 1000;
const PER_MINUTE = 20;

export const dingTalkAnswer = (errcode: number, errmsg: string): FakeAnswer => json(200, { errcode, errmsg });

/** Returns why the signature fails, or undefined: sign = base64(HMAC-SHA256(secret, timestamp + "\n" + secret)). */
function checkSignature(secret: string, query: URLSearchParams, now: number): string | undefined {
  const timestamp = query.get('timestamp');
  const sign = query.get('sign');
  if (!timestamp || !/^\d{13}$/.test(timestamp) || Math.abs(now - Number(timestamp)) > TIMESTAMP_WINDOW_MS) return 'invalid timestamp';
  const expected = createHmac('sha256', secret).update(`${timestamp}\n${secret}`).digest();
  // URLSearchParams has already URL-decoded the value, as DingTalk does.
  const given = Buffer.from(sign ?? '', 'base64');
  return given.length === expected.length && timingSafeEqual(given, expected) ? undefined : 'sign not match';
}

/** The text a post shows, or undefined when the body does not have its msgtype's shape. */
function postText(body: unknown): string | undefined {
  const b = body as { msgtype?: unknown; text?: { content?: unknown }; markdown?: { title?: unknown; text?: unknown }; at?: unknown } | null;
  if (typeof b !== 'object' || b === null) return undefined;
  const at = b.at as { atMobiles?: unknown } | undefined;
  if (at !== undefined && at.atMobiles !== undefined) {
    if (!Array.isArray(at.atMobiles) || !at.atMobiles.every((m) => typeof m === 'string')) return undefined;
  }
  if (b.msgtype === 'text' && typeof b.text?.content === 'string' && b.text.content !== '') return b.text.content;
  if (b.msgtype === 'markdown') {
    const { title, text } = b.markdown ?? {};
    if (typeof title === 'string' && title !== '' && typeof text === 'string' && text !== '') return `${title}\n${text}`;
  }
  return undefined;
}

export async function startFakeDingTalk(robots: DingTalkRobot[]): Promise<DingTalkFake> {
  const byToken = new Map(robots.map((r) => [r.token, r]));
  const counter = new PostCounter();
  const fake = await startChatFake({
    check(req: FakeRequest) {
      if (req.path !== '/robot/send') return { status: 404, body: '' };
      const robot = byToken.get(req.query.get('access_token') ?? '');
      if (!robot) return dingTalkAnswer(300001, 'token is not exist');
      if (!req.headers['content-type']?.startsWith('application/json')) return dingTalkAnswer(43004, '无效的HTTP HEADER Content-Type');
      if (robot.secret) {
        const problem = checkSignature(robot.secret, req.query, req.receivedAt);
        if (problem) return dingTalkAnswer(310000, `${problem}, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]`);
      }
      const text = postText(req.body);
      if (text === undefined) return dingTalkAnswer(300001, 'param error');
      if (robot.keywords && !robot.keywords.some((k) => text.includes(k))) return dingTalkAnswer(310000, 'keywords not in content');
      if (!counter.take(robot.token, robot.perMinute ?? PER_MINUTE, req.receivedAt)) {
        return dingTalkAnswer(130101, 'send too fast, exceed 20 times per minute');
      }
      return undefined;
    },
    ok: () => dingTalkAnswer(0, 'ok'),
  });
  return { ...fake, webhookUrl: (token) => `${fake.url}/robot/send?access_token=${token}` };
}
