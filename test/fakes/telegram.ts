import type { IncomingMessage } from 'node:http';
import { FakeHttpService, type FakeReply } from '../helpers/fake-http.js';

/**
 * The Telegram Bot API's sendMessage on 127.0.0.1, checking requests as the real one does: the
 * token in the path (404 when malformed, 401 when unknown), JSON, form or query parameters,
 * chat_id, text of 1–4096 characters, parse_mode, and entity syntax for HTML and MarkdownV2.
 * Chats can be blocked, kicked, unknown or migrated; scripted replies simulate flood control.
 */

export interface SentMessage {
  token: string;
  chatId: string;
  text: string;
  parseMode?: string;
  at: number;
}

/** Every request that named a chat, whatever the answer. */
export interface ChatRequest {
  chatId: string;
  status: number;
  at: number;
}

const TOKEN = /^\d+:[A-Za-z0-9_-]+$/;
const PARSE_MODES = ['MarkdownV2', 'HTML', 'Markdown'];
// MarkdownV2: these must be escaped with '\' outside entities; '*_~`|[]()' open entities.
const MDV2_RESERVED = new Set([...'>#+-={}.!']);
const HTML_TAGS = new Set(['b', 'strong', 'i', 'em', 'u', 'ins', 's', 'strike', 'del', 'a', 'code', 'pre', 'tg-spoiler', 'blockquote', 'span']);

const failure = (status: number, description: string, parameters?: object): FakeReply => ({
  status,
  body: JSON.stringify({ ok: false, error_code: status, description, ...(parameters ? { parameters } : {}) }),
});

/** The entity syntax error Telegram would report, or undefined. */
function entityError(text: string, mode: string | undefined): string | undefined {
  if (mode === 'MarkdownV2') {
    for (let i = 0; i < text.length; i++) {
      if (text[i] === '\\') i++;
      else if (MDV2_RESERVED.has(text[i]!)) {
        return `Bad Request: can't parse entities: Character '${text[i]}' is reserved and must be escaped with the preceding '\\'`;
      }
    }
  }
  if (mode === 'HTML') {
    const open: string[] = [];
    for (const [, close, tag] of text.matchAll(/<(\/?)([a-z-]+)[^>]*>/g)) {
      if (!HTML_TAGS.has(tag!)) return `Bad Request: can't parse entities: Unsupported start tag "${tag}"`;
      if (!close) open.push(tag!);
      else if (open.pop() !== tag) return `Bad Request: can't parse entities: Unexpected end tag "${tag}"`;
    }
    if (open.length) return `Bad Request: can't parse entities: Can't find end tag corresponding to start tag "${open.at(-1)}"`;
  }
  return undefined;
}

/** The call's parameters: query, then a JSON or form body; throws on a malformed JSON body. */
function readParams(req: IncomingMessage, raw: string, url: URL): Record<string, string> {
  const params: Record<string, string> = Object.fromEntries(url.searchParams);
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
  if (type === 'application/json' && raw) {
    for (const [k, v] of Object.entries(JSON.parse(raw) as Record<string, unknown>)) params[k] = String(v);
  } else if (type === 'application/x-www-form-urlencoded') {
    Object.assign(params, Object.fromEntries(new URLSearchParams(raw)));
  }
  return params;
}

export class FakeTelegram extends FakeHttpService {
  readonly sent: SentMessage[] = [];
  readonly requests: ChatRequest[] = [];
  readonly blocked = new Set<string>();
  readonly kicked = new Set<string>();
  readonly missing = new Set<string>();
  /** Group id → the supergroup id it became. */
  readonly migrated = new Map<string, string>();
  private readonly scripts = new Map<string, FakeReply[]>();
  private nextMessageId = 1;

  private constructor(private readonly tokens: ReadonlySet<string>) {
    super({ 'content-type': 'application/json' });
  }

  static start(tokens: string[]): Promise<FakeTelegram> {
    return new FakeTelegram(new Set(tokens)).listen();
  }

  /** Answers the next messages to `chatId` with these replies, in order. */
  script(chatId: string, ...replies: FakeReply[]): void {
    this.scripts.set(chatId, replies);
  }

  to(chatId: string): SentMessage[] {
    return this.sent.filter((m) => m.chatId === chatId);
  }

  protected handle(req: IncomingMessage, body: Buffer): FakeReply {
    const url = new URL(req.url ?? '/', this.url);
    const match = /^\/bot([^/]*)\/sendMessage$/.exec(url.pathname);
    // Like a framework's default 404 page, this echoes the path: whatever holds the URL leaks the token.
    if (!match) return { status: 404, headers: { 'content-type': 'text/html' }, body: `Cannot ${req.method} ${url.pathname}` };
    const token = decodeURIComponent(match[1]!);
    if (!TOKEN.test(token)) return failure(404, 'Not Found');
    if (!this.tokens.has(token)) return failure(401, 'Unauthorized');
    if (req.method !== 'POST' && req.method !== 'GET') return failure(405, 'Method Not Allowed');
    const p = readParams(req, body.toString('utf8'), url);
    if (!p.chat_id) return failure(400, 'Bad Request: chat_id is empty');
    if (!p.text) return failure(400, 'Bad Request: message text is empty');
    if ([...p.text].length > 4096) return failure(400, 'Bad Request: message is too long');
    if (p.parse_mode !== undefined && !PARSE_MODES.includes(p.parse_mode)) {
      return failure(400, `Bad Request: unsupported parse_mode "${p.parse_mode}"`);
    }
    const reply = this.answer(token, p);
    this.requests.push({ chatId: p.chat_id, status: reply.status, at: Date.now() });
    return reply;
  }

  private answer(token: string, p: Record<string, string>): FakeReply {
    const chatId = p.chat_id!;
    const text = p.text!;
    const scripted = this.scripts.get(chatId)?.shift();
    if (scripted) return scripted;
    if (this.blocked.has(chatId)) return failure(403, 'Forbidden: bot was blocked by the user');
    if (this.kicked.has(chatId)) return failure(403, 'Forbidden: bot was kicked from the group chat');
    if (this.missing.has(chatId)) return failure(400, 'Bad Request: chat not found');
    const next = this.migrated.get(chatId);
    if (next) return failure(400, 'Bad Request: group chat was upgraded to a supergroup chat', { migrate_to_chat_id: Number(next) });
    const problem = entityError(text, p.parse_mode);
    if (problem) return failure(400, problem);
    this.sent.push({ token, chatId, text, parseMode: p.parse_mode, at: Date.now() });
    const result = {
      message_id: this.nextMessageId++,
      date: Math.floor(Date.now() / 1000),
      chat: { id: Number(chatId), type: chatId.startsWith('-') ? 'supergroup' : 'private' },
      text,
    };
    return { status: 200, body: JSON.stringify({ ok: true, result }) };
  }

  protected override failed(error: Error): FakeReply {
    return failure(400, `Bad Request: ${error.message}`);
  }
}
