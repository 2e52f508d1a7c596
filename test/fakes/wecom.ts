import { json, PostCounter, startChatFake, type ChatFake, type FakeAnswer, type FakeRequest } from './chat-webhooks.js';

/**
 * A fake WeCom group robot (POST /cgi-bin/webhook/send?key=…): checks the key, the body's shape by
 * msgtype and its byte limits, and the 20-a-minute limit, and answers as WeCom does, HTTP 200 with
 * {errcode, errmsg}.
 */

export interface WeComRobot {
  key: string;
  /** Posts a minute before 45009; WeCom's is 20. */
  perMinute?: number;
}

export interface WeComFake extends ChatFake {
  webhookUrl(key: string): string;
}

const PER_MINUTE = 20;
// Content limits in UTF-8 bytes.
const MAX_BYTES = { text: 2048, markdown: 4096 } as const;

export const weComAnswer = (errcode: number, errmsg: string): FakeAnswer => json(200, { errcode, errmsg });

const isStringList = (v: unknown) => v === undefined || (Array.isArray(v) && v.every((x) => typeof x === 'string'));

function checkBody(body: unknown): FakeAnswer | undefined {
  const b = body as { msgtype?: unknown; text?: Record<string, unknown>; markdown?: Record<string, unknown> } | undefined;
  if (typeof b !== 'object' || b === null) return weComAnswer(40058, 'invalid Request Parameter');
  if (b.msgtype !== 'text' && b.msgtype !== 'markdown') return weComAnswer(40008, 'invalid message type');
  const part = b[b.msgtype];
  const content = part?.content;
  if (typeof content !== 'string' || content === '') return weComAnswer(44004, 'empty content');
  if (Buffer.byteLength(content) > MAX_BYTES[b.msgtype]) {
    return weComAnswer(40058, `${b.msgtype}.content exceed max length ${MAX_BYTES[b.msgtype]}. invalid Request Parameter`);
  }
  if (b.msgtype === 'text' && (!isStringList(part?.mentioned_list) || !isStringList(part?.mentioned_mobile_list))) {
    return weComAnswer(40058, 'invalid Request Parameter');
  }
  return undefined;
}

export async function startFakeWeCom(robots: WeComRobot[]): Promise<WeComFake> {
  const byKey = new Map(robots.map((r) => [r.key, r]));
  const counter = new PostCounter();
  const fake = await startChatFake({
    check(req: FakeRequest) {
      if (req.path !== '/cgi-bin/webhook/send') return { status: 404, body: '' };
      const robot = byKey.get(req.query.get('key') ?? '');
      if (!robot) return weComAnswer(93000, 'invalid webhook url, hint: [fake], more info at https://open.work.weixin.qq.com/devtool/query?e=93000');
      const refusal = checkBody(req.body);
      if (refusal) return refusal;
      if (!counter.take(robot.key, robot.perMinute ?? PER_MINUTE, req.receivedAt)) return weComAnswer(45009, 'api freq out of limit');
      return undefined;
    },
    ok: () => weComAnswer(0, 'ok'),
  });
  return { ...fake, webhookUrl: (key) => `${fake.url}/cgi-bin/webhook/send?key=${key}` };
}
