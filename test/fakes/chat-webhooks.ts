import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

/*
 * Fake chat webhooks on 127.0.0.1: a small base every group robot fake runs on, and the Slack
 * incoming webhook and Discord webhook fakes. Each fake checks a request as the real service does
 * and answers with its real success and error shapes.
 */

export interface FakeAnswer {
  status: number;
  headers?: Record<string, string>;
  body: string;
}

export interface FakeRequest {
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  rawBody: string;
  /** The parsed JSON body; undefined when it was not JSON. */
  body: unknown;
  receivedAt: number;
}

export interface ChatFake {
  /** e.g. http://127.0.0.1:41234 */
  readonly url: string;
  /** Every request, with what it was answered, in arrival order. */
  readonly requests: readonly (FakeRequest & { answer: FakeAnswer })[];
  /** Requests that passed every check and were posted to their group. */
  readonly posts: readonly FakeRequest[];
  /** Answers the next requests that pass the checks with these, in turn, instead of posting them. */
  failNext(...answers: FakeAnswer[]): void;
  close(): Promise<void>;
}

export interface FakeRules {
  /** Why the service refuses this request, as its answer; undefined when it accepts it. */
  check(req: FakeRequest): FakeAnswer | undefined;
  /** The answer to an accepted post. */
  ok(req: FakeRequest): FakeAnswer;
}

export const json = (status: number, body: unknown, headers: Record<string, string> = {}): FakeAnswer => ({
  status,
  headers: { 'content-type': 'application/json; charset=utf-8', ...headers },
  body: JSON.stringify(body),
});

export async function startChatFake(rules: FakeRules): Promise<ChatFake> {
  const requests: (FakeRequest & { answer: FakeAnswer })[] = [];
  const posts: FakeRequest[] = [];
  const scripted: FakeAnswer[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://fake');
      const rawBody = Buffer.concat(chunks).toString('utf8');
      let body: unknown;
      try {
        body = JSON.parse(rawBody);
      } catch {
        body = undefined;
      }
      const request: FakeRequest = { path: url.pathname, query: url.searchParams, headers: req.headers, rawBody, body, receivedAt: Date.now() };
      const refusal = req.method === 'POST' ? rules.check(request) : { status: 405, body: '' };
      const override = refusal ? undefined : scripted.shift();
      const answer = refusal ?? override ?? rules.ok(request);
      if (!refusal && !override) posts.push(request);
      requests.push({ ...request, answer });
      res.writeHead(answer.status, answer.headers).end(answer.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    posts,
    failNext: (...answers) => void scripted.push(...answers),
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const isJson = (headers: IncomingHttpHeaders) => headers['content-type']?.startsWith('application/json') ?? false;

/** Per robot, the posts it took in the last `windowMs`: the robots' per-minute limits (a sliding window, so a test never straddles a minute's turn). */
export class PostCounter {
  private readonly times = new Map<string, number[]>();

  constructor(private readonly windowMs = 60_000) {}

  /** Counts a post for `robot` unless it already had `limit` in the window; false when over. */
  take(robot: string, limit: number, now = Date.now()): boolean {
    const recent = (this.times.get(robot) ?? []).filter((t) => now - t < this.windowMs);
    if (recent.length >= limit) return false;
    this.times.set(robot, [...recent, now]);
    return true;
  }
}

// Slack -------------------------------------------------------------------------------------------

/** A Slack incoming webhook: its path (/services/T…/B…/…) and whether its channel was archived. */
export interface SlackHook {
  path: string;
  archived?: boolean;
}

const slackText = (status: number, code: string): FakeAnswer => ({ status, headers: { 'content-type': 'text/html' }, body: code });

/** Slack's plain-text error answer, e.g. slackError(429, 'rate_limited', {'retry-after': '1'}). */
export function slackError(status: number, code: string, headers: Record<string, string> = {}): FakeAnswer {
  return { ...slackText(status, code), headers: { 'content-type': 'text/html', ...headers } };
}

export function startFakeSlack(hooks: SlackHook[]): Promise<ChatFake> {
  const byPath = new Map(hooks.map((h) => [h.path, h]));
  return startChatFake({
    check(req) {
      const hook = byPath.get(req.path);
      if (!hook) return slackText(404, 'no_service');
      if (hook.archived) return slackText(410, 'channel_is_archived');
      if (!isJson(req.headers) || typeof req.body !== 'object' || req.body === null) return slackText(400, 'invalid_payload');
      const { text, blocks } = req.body as { text?: unknown; blocks?: unknown };
      if (text !== undefined && typeof text !== 'string') return slackText(400, 'invalid_payload');
      if (blocks !== undefined) {
        const valid = Array.isArray(blocks) && blocks.every((b) => typeof (b as { type?: unknown } | null)?.type === 'string');
        if (!valid) return slackText(400, 'invalid_blocks');
      }
      if (!text && blocks === undefined) return slackText(400, 'no_text');
      return undefined;
    },
    ok: () => slackText(200, 'ok'),
  });
}

// Discord -----------------------------------------------------------------------------------------

export interface DiscordHook {
  id: string;
  token: string;
}

// Discord's documented message and embed limits.
const MAX_CONTENT = 2000;
const MAX_EMBEDS = 10;
const MAX_TITLE = 256;
const MAX_DESCRIPTION = 4096;

const discordError = (status: number, code: number, message: string, extra: object = {}) => json(status, { message, code, ...extra });

/** Discord's 429: retry_after in the body (seconds, with decimals) and the Retry-After header. */
export function discordRateLimited(seconds: number): FakeAnswer {
  return json(
    429,
    { message: 'You are being rate limited.', retry_after: seconds, global: false },
    { 'retry-after': String(Math.ceil(seconds)), 'x-ratelimit-scope': 'shared' },
  );
}

function formError(field: string, message: string): FakeAnswer {
  return discordError(400, 50035, 'Invalid Form Body', {
    errors: { [field]: { _errors: [{ code: 'BASE_TYPE_MAX_LENGTH', message }] } },
  });
}

function checkEmbeds(embeds: unknown): FakeAnswer | undefined {
  if (!Array.isArray(embeds) || embeds.length > MAX_EMBEDS) return formError('embeds', `Must be ${MAX_EMBEDS} or fewer in length.`);
  for (const [i, e] of embeds.entries()) {
    const { title, description } = (e ?? {}) as { title?: unknown; description?: unknown };
    if (typeof title === 'string' && title.length > MAX_TITLE) return formError(`embeds.${i}.title`, `Must be ${MAX_TITLE} or fewer in length.`);
    if (typeof description === 'string' && description.length > MAX_DESCRIPTION) {
      return formError(`embeds.${i}.description`, `Must be ${MAX_DESCRIPTION} or fewer in length.`);
    }
  }
  return undefined;
}

export function startFakeDiscord(hooks: DiscordHook[]): Promise<ChatFake> {
  const tokens = new Map(hooks.map((h) => [h.id, h.token]));
  return startChatFake({
    check(req) {
      const [, api, webhooks, id, token] = req.path.split('/');
      if (api !== 'api' || webhooks !== 'webhooks' || !id || !tokens.has(id)) return discordError(404, 10015, 'Unknown Webhook');
      if (token !== tokens.get(id)) return discordError(401, 50027, 'Invalid Webhook Token');
      if (!isJson(req.headers) || typeof req.body !== 'object' || req.body === null) {
        return discordError(400, 50109, 'The request body contains invalid JSON.');
      }
      const { content, embeds } = req.body as { content?: unknown; embeds?: unknown };
      if (typeof content === 'string' && content.length > MAX_CONTENT) return formError('content', `Must be ${MAX_CONTENT} or fewer in length.`);
      if (embeds !== undefined) {
        const refusal = checkEmbeds(embeds);
        if (refusal) return refusal;
      }
      const hasEmbeds = Array.isArray(embeds) && embeds.length > 0;
      if (!content && !hasEmbeds) return discordError(400, 50006, 'Cannot send an empty message');
      return undefined;
    },
    // Without ?wait=true, Discord answers an accepted post with 204 and no body.
    ok: () => ({ status: 204, body: '' }),
  });
}
