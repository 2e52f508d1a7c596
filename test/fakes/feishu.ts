import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A local Feishu: custom bot webhooks and the app OpenAPI (tenant_access_token, im/v1 messages,
 * image upload, urgent reminders), plus a plain image host standing in for the outside web. It
 * refuses what Feishu refuses (signatures, tokens, id types, content shapes, unknown image keys)
 * with Feishu's answer shapes, records what it accepted, and can be told to fail.
 */

export type FakeRoute = 'webhook' | 'token' | 'message' | 'image' | 'urgent';

/** A scripted answer: HTTP status (200 unless set) and a Feishu code, or a non-JSON body. */
export interface ScriptedFailure {
  status?: number;
  code?: number;
  msg?: string;
  headers?: Record<string, string>;
}

export interface WebhookPost {
  token: string;
  body: Record<string, any>;
}

export interface AppMessage {
  appId: string;
  receiveIdType: string;
  receiveId: string;
  msgType: string;
  /** `content` parsed from its JSON string. */
  content: any;
  uuid?: string;
  messageId: string;
  token: string;
}

export interface UrgentCall {
  urgentType: string;
  messageId: string;
  userIdType: string;
  userIds: string[];
}

export interface BotOptions {
  /** Signing secret; when set, posts must carry a valid timestamp and sign. */
  secret?: string;
  /** The keyword security setting: a post must contain one of these. */
  keywords?: string[];
  /** Posts allowed per second and per minute (Feishu: 5 and 100). */
  perSecond?: number;
  perMinute?: number;
}

interface Answer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

const MAX_WEBHOOK_BYTES = 20 * 1024;
const MAX_IMAGE_BYTES = 10 * 1024 * 1024;
// im/v1 message size limits: text 150 KB, post and card 30 KB.
const MAX_MESSAGE_BYTES: Record<string, number> = { text: 150 * 1024, post: 30 * 1024, interactive: 30 * 1024 };
const WEBHOOK_MSG_TYPES = new Set(['text', 'post', 'image', 'share_chat', 'interactive']);
const APP_MSG_TYPES = new Set(['text', 'post', 'image', 'file', 'audio', 'media', 'sticker', 'interactive', 'share_chat', 'share_user', 'system']);
const POST_TAGS = new Set(['text', 'a', 'at', 'img', 'media', 'emotion', 'code_block', 'hr', 'md']);
const ID_FORMATS: Record<string, RegExp> = {
  open_id: /^ou_\w+$/,
  union_id: /^on_\w+$/,
  user_id: /^\w+$/,
  email: /^[^\s@]+@[^\s@]+\.[^\s@]+$/,
  chat_id: /^oc_\w+$/,
};
const URGENT_ID_TYPES = new Set(['open_id', 'union_id', 'user_id']);
// The first bytes of the formats Feishu accepts (PNG, JPEG, GIF, WEBP, BMP).
const IMAGE_MAGIC = [Buffer.from('89504e47', 'hex'), Buffer.from('ffd8ff', 'hex'), Buffer.from('GIF8'), Buffer.from('RIFF'), Buffer.from('BM')];

const hex = (n: number) => randomBytes(n).toString('hex');
const isObject = (v: unknown): v is Record<string, any> => typeof v === 'object' && v !== null && !Array.isArray(v);
const ok = (data: unknown): Answer => ({ status: 200, body: { code: 0, msg: 'success', data } });
/** An OpenAPI error: `{code, msg, error: {log_id}}` (the log id is what Feishu support asks for). */
const apiError = (status: number, code: number, msg: string): Answer => ({
  status,
  body: { code, msg, error: { log_id: `20260101${hex(8)}` } },
});
const botError = (code: number, msg: string, status = 200): Answer => ({ status, body: { code, msg, data: {} } });

export class FakeFeishu {
  readonly webhookPosts: WebhookPost[] = [];
  readonly messages: AppMessage[] = [];
  readonly urgents: UrgentCall[] = [];
  readonly uploads: { imageKey: string; bytes: number }[] = [];
  /** Every image host request path, in order. */
  readonly downloads: string[] = [];
  /** Every request by route, refused ones included. */
  readonly requests: Record<FakeRoute, number> = { webhook: 0, token: 0, message: 0, image: 0, urgent: 0 };
  /** Open ids Feishu would refuse: outside the app's availability range (230013), not in the chat (230002). */
  readonly outOfRange = new Set<string>();
  readonly notInChat = new Set<string>();
  /** Lifetime of a new tenant_access_token, in seconds (Feishu: 7200). */
  tokenTtlSeconds = 7200;

  private readonly bots = new Map<string, BotOptions & { sentAt: number[] }>();
  private readonly apps = new Map<string, string>();
  private readonly tokens = new Map<string, { appId: string; expiresAt: number }>();
  private readonly currentToken = new Map<string, string>();
  private readonly imageKeys = new Set<string>();
  private readonly byUuid = new Map<string, AppMessage>();
  private readonly hosted = new Map<string, { bytes: Buffer; type: string }>();
  private readonly failures: Record<FakeRoute, ScriptedFailure[]> = { webhook: [], token: [], message: [], image: [], urgent: [] };

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(): Promise<FakeFeishu> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const fake = new FakeFeishu(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    server.on('request', (req, res) => void fake.handle(req, res));
    return fake;
  }

  /** Registers a custom bot; returns its webhook URL. */
  addBot(token: string, opts: BotOptions = {}): string {
    this.bots.set(token, { ...opts, sentAt: [] });
    return `${this.url}/open-apis/bot/v2/hook/${token}`;
  }

  addApp(appId: string, appSecret: string): void {
    this.apps.set(appId, appSecret);
  }

  /** Serves `bytes` at `/static/<name>` (and a redirect to it at `/moved/<name>`); returns the URL. */
  hostImage(name: string, bytes: Buffer, type = 'image/png'): string {
    this.hosted.set(name, { bytes, type });
    return `${this.url}/static/${name}`;
  }

  /** The next `times` requests to `route` get this answer instead of being handled. */
  failNext(route: FakeRoute, failure: ScriptedFailure, times = 1): void {
    for (let i = 0; i < times; i++) this.failures[route].push(failure);
  }

  /** Invalidates every issued tenant_access_token (as a reset app secret would). */
  revokeTokens(): void {
    this.tokens.clear();
    this.currentToken.clear();
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const url = new URL(req.url ?? '/', this.url);
    const answer = await this.route(req, url, body);
    res.writeHead(answer.status, {
      ...(typeof answer.body === 'string' ? { 'content-type': 'text/plain' } : { 'content-type': 'application/json; charset=utf-8' }),
      ...answer.headers,
    });
    res.end(typeof answer.body === 'string' || Buffer.isBuffer(answer.body) ? answer.body : JSON.stringify(answer.body));
  }

  private async route(req: IncomingMessage, url: URL, body: Buffer): Promise<Answer> {
    const path = url.pathname;
    const method = req.method ?? 'GET';
    let m: RegExpMatchArray | null;
    if (method === 'GET' && (m = path.match(/^\/(static|moved)\/([\w.-]+)$/))) return this.serveImage(m[1]!, m[2]!);
    if (method === 'POST' && (m = path.match(/^\/open-apis\/bot\/v2\/hook\/([\w-]+)$/))) {
      return this.scripted('webhook') ?? this.webhook(m[1]!, req, body);
    }
    if (method === 'POST' && path === '/open-apis/auth/v3/tenant_access_token/internal') {
      return this.scripted('token') ?? this.issueToken(req, body);
    }
    if (method === 'POST' && path === '/open-apis/im/v1/messages') {
      return this.scripted('message') ?? this.authorized(req, (appId, token) => this.createMessage(appId, token, req, url, body));
    }
    if (method === 'POST' && path === '/open-apis/im/v1/images') {
      return this.scripted('image') ?? this.authorized(req, () => this.uploadImage(req, body));
    }
    if (method === 'PATCH' && (m = path.match(/^\/open-apis\/im\/v1\/messages\/([\w-]+)\/urgent_(app|sms|phone)$/))) {
      const [, messageId, urgentType] = m;
      return this.scripted('urgent') ?? this.authorized(req, (appId) => this.urgent(appId, messageId!, urgentType!, url, body));
    }
    return { status: 404, body: '404 page not found' };
  }

  private scripted(route: FakeRoute): Answer | undefined {
    this.requests[route]++;
    const failure = this.failures[route].shift();
    if (!failure) return undefined;
    const status = failure.status ?? 200;
    const headers =
      status === 429 ? { 'x-ogw-ratelimit-limit': '50', 'x-ogw-ratelimit-reset': '1', ...failure.headers } : failure.headers;
    if (failure.code === undefined) return { status, body: 'upstream unavailable', headers };
    return { ...(route === 'webhook' ? botError(failure.code, failure.msg ?? 'error', status) : apiError(status, failure.code, failure.msg ?? 'error')), headers };
  }

  private serveImage(kind: string, name: string): Answer {
    this.downloads.push(`/${kind}/${name}`);
    const image = this.hosted.get(name);
    if (!image) return { status: 404, body: 'not found' };
    if (kind === 'moved') return { status: 302, body: '', headers: { location: `/static/${name}` } };
    return { status: 200, body: image.bytes, headers: { 'content-type': image.type } };
  }

  // ---- custom bot webhook (providers.md §2) ----

  private webhook(token: string, req: IncomingMessage, raw: Buffer): Answer {
    const bot = this.bots.get(token);
    if (!bot) return botError(19001, 'param invalid: incoming webhook access token invalid');
    const json = String(req.headers['content-type']).startsWith('application/json');
    if (!json || raw.length > MAX_WEBHOOK_BYTES) return botError(9499, 'Bad Request', 400);
    let body: Record<string, any>;
    try {
      body = JSON.parse(raw.toString('utf8'));
      if (!isObject(body)) throw new Error('not an object');
    } catch {
      return botError(9499, 'Bad Request', 400);
    }
    if (!WEBHOOK_MSG_TYPES.has(body.msg_type)) return botError(19002, 'param invalid: msg_type');
    if (bot.secret !== undefined) {
      const ts = Number(body.timestamp);
      const expected = createHmac('sha256', `${body.timestamp}\n${bot.secret}`).update(Buffer.alloc(0)).digest('base64');
      if (!Number.isInteger(ts) || Math.abs(Date.now() / 1000 - ts) > 3600 || body.sign !== expected) {
        return botError(19021, 'sign match fail or timestamp is not within one hour from current time');
      }
    }
    const shape = body.msg_type === 'interactive' ? this.checkCard(body.card) : this.checkBotContent(body.msg_type, body.content);
    if (shape) return botError(9499, 'Bad Request', 400);
    const text = JSON.stringify(body.content ?? body.card);
    if (bot.keywords && !bot.keywords.some((k) => text.includes(k))) return botError(19024, 'Key Words Not Found');
    const now = Date.now();
    bot.sentAt = bot.sentAt.filter((t) => now - t < 60_000);
    const lastSecond = bot.sentAt.filter((t) => now - t < 1_000).length;
    if (lastSecond >= (bot.perSecond ?? 5) || bot.sentAt.length >= (bot.perMinute ?? 100)) {
      return botError(11232, 'frequency limited');
    }
    bot.sentAt.push(now);
    this.webhookPosts.push({ token, body });
    return { status: 200, body: { code: 0, msg: 'success', data: {}, Extra: null, StatusCode: 0, StatusMessage: 'success' } };
  }

  private checkBotContent(msgType: string, content: unknown): string | undefined {
    if (!isObject(content)) return 'content must be an object';
    if (msgType === 'text') return typeof content.text === 'string' ? undefined : 'content.text';
    if (msgType === 'post') return isObject(content.post) ? this.checkPost(content.post) : 'content.post';
    if (msgType === 'image') return this.imageKeys.has(content.image_key) ? undefined : 'content.image_key';
    return typeof content.share_chat_id === 'string' ? undefined : 'content.share_chat_id';
  }

  // ---- OpenAPI (providers.md §3) ----

  private issueToken(req: IncomingMessage, raw: Buffer): Answer {
    if (!String(req.headers['content-type']).startsWith('application/json')) return apiError(400, 10003, 'invalid param');
    let body: any;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      return apiError(400, 10003, 'invalid param');
    }
    const secret = this.apps.get(body?.app_id);
    // 10003 and 10014 are the token endpoint's answers to an unknown app and a wrong secret.
    if (secret === undefined) return apiError(400, 10003, 'invalid param');
    if (body.app_secret !== secret) return apiError(400, 10014, 'app secret invalid');
    const now = Date.now();
    const lifetimeMs = this.tokenTtlSeconds * 1000;
    let token = this.currentToken.get(body.app_id);
    const current = token ? this.tokens.get(token) : undefined;
    // Feishu hands out the same token until less than a quarter of its life (30 min of 2 h) remains.
    if (!token || !current || current.expiresAt - now < lifetimeMs / 4) {
      token = `t-${hex(20)}`;
      this.tokens.set(token, { appId: body.app_id, expiresAt: now + lifetimeMs });
      this.currentToken.set(body.app_id, token);
    }
    const expire = Math.floor((this.tokens.get(token)!.expiresAt - now) / 1000);
    return { status: 200, body: { code: 0, msg: 'ok', tenant_access_token: token, expire } };
  }

  private async authorized(req: IncomingMessage, handler: (appId: string, token: string) => Answer | Promise<Answer>): Promise<Answer> {
    const auth = req.headers.authorization ?? '';
    if (!auth.startsWith('Bearer ')) {
      return apiError(400, 99991661, 'Missing access token for authorization. Please make a request with token attached.');
    }
    const token = auth.slice('Bearer '.length);
    const issued = this.tokens.get(token);
    if (!issued || issued.expiresAt <= Date.now()) {
      return apiError(400, 99991663, 'Invalid access token for authorization. Please make a request with token attached.');
    }
    return handler(issued.appId, token);
  }

  private createMessage(appId: string, token: string, req: IncomingMessage, url: URL, raw: Buffer): Answer {
    if (!String(req.headers['content-type']).startsWith('application/json')) return apiError(400, 230001, 'invalid content-type');
    const receiveIdType = url.searchParams.get('receive_id_type') ?? '';
    const format = ID_FORMATS[receiveIdType];
    if (!format) return apiError(400, 230001, 'invalid parameter: receive_id_type');
    let body: any;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      return apiError(400, 230001, 'invalid parameter: body is not JSON');
    }
    if (typeof body?.receive_id !== 'string' || !format.test(body.receive_id)) {
      return apiError(400, 230001, `invalid parameter: receive_id is not a valid ${receiveIdType}`);
    }
    if (!APP_MSG_TYPES.has(body.msg_type)) return apiError(400, 230001, 'invalid parameter: msg_type');
    if (typeof body.content !== 'string') return apiError(400, 230001, 'invalid parameter: content must be a JSON string');
    if (body.uuid !== undefined && (typeof body.uuid !== 'string' || body.uuid.length > 50)) return apiError(400, 230001, 'invalid parameter: uuid');
    if (raw.length > (MAX_MESSAGE_BYTES[body.msg_type] ?? Infinity)) return apiError(400, 230025, 'message content too long');
    let content: unknown;
    try {
      content = JSON.parse(body.content);
    } catch {
      return apiError(400, 230001, 'invalid parameter: content is not JSON');
    }
    const problem = this.checkAppContent(body.msg_type, content);
    if (problem) return apiError(400, 230001, `invalid parameter: ${problem}`);
    if (this.outOfRange.has(body.receive_id)) return apiError(400, 230013, "Bot has NO availability to this user.");
    if (this.notInChat.has(body.receive_id)) return apiError(400, 230002, 'Bot/User can NOT be out of the chat.');
    const dedupeKey = body.uuid === undefined ? undefined : `${appId}\0${body.uuid}`;
    const earlier = dedupeKey ? this.byUuid.get(dedupeKey) : undefined;
    const message = earlier ?? {
      appId,
      receiveIdType,
      receiveId: body.receive_id,
      msgType: body.msg_type,
      content,
      uuid: body.uuid,
      messageId: `om_${hex(16)}`,
      token,
    };
    if (!earlier) {
      this.messages.push(message);
      if (dedupeKey) this.byUuid.set(dedupeKey, message);
    }
    const now = String(Date.now());
    return ok({
      message_id: message.messageId,
      chat_id: `oc_${hex(16)}`,
      msg_type: message.msgType,
      create_time: now,
      update_time: now,
      deleted: false,
      updated: false,
      sender: { id: appId, id_type: 'app_id', sender_type: 'app', tenant_key: 'fake-tenant' },
      body: { content: body.content },
    });
  }

  private checkAppContent(msgType: string, content: unknown): string | undefined {
    if (!isObject(content)) return 'content must be a JSON object';
    if (msgType === 'text') return typeof content.text === 'string' ? undefined : 'content.text';
    if (msgType === 'post') return this.checkPost(content);
    if (msgType === 'interactive') return this.checkCard(content);
    if (msgType === 'image') return this.imageKeys.has(content.image_key) ? undefined : 'content.image_key';
    return undefined;
  }

  /** A post's locale map: `{zh_cn: {title, content: [[element, ..], ..]}}`. */
  private checkPost(post: Record<string, any>): string | undefined {
    const locales = Object.entries(post);
    if (locales.length === 0) return 'post has no locale';
    for (const [locale, value] of locales) {
      if (!/^[a-z]{2}_[a-z]{2}$/.test(locale)) return `post locale ${locale}`;
      if (!isObject(value) || !Array.isArray(value.content)) return `${locale}.content`;
      for (const line of value.content) {
        if (!Array.isArray(line)) return `${locale}.content lines must be arrays`;
        for (const el of line) {
          if (!isObject(el) || !POST_TAGS.has(el.tag)) return `${locale}: unknown element`;
          if (el.tag === 'at' && typeof el.user_id !== 'string') return `${locale}: at without user_id`;
          if (el.tag === 'img' && !this.imageKeys.has(el.image_key)) return `${locale}: img with an unknown image_key`;
        }
      }
    }
    return undefined;
  }

  /** A card: JSON 1.0 `elements`, or 2.0 `body.elements`; every image key must be one Feishu issued. */
  private checkCard(card: unknown): string | undefined {
    if (!isObject(card)) return 'card must be an object';
    const elements = card.schema === '2.0' ? card.body?.elements : card.elements;
    if (!Array.isArray(elements) || !elements.every((e) => isObject(e) && typeof e.tag === 'string')) return 'card elements';
    const keys: unknown[] = [];
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (isObject(v)) for (const [k, x] of Object.entries(v)) k === 'img_key' || k === 'image_key' ? keys.push(x) : walk(x);
    };
    walk(card);
    return keys.every((k) => this.imageKeys.has(k as string)) ? undefined : 'card image key unknown';
  }

  private async uploadImage(req: IncomingMessage, raw: Buffer): Promise<Answer> {
    const type = String(req.headers['content-type']);
    if (!type.startsWith('multipart/form-data')) return apiError(400, 234001, 'Invalid request param.');
    const form = await new Response(raw, { headers: { 'content-type': type } }).formData();
    const imageType = form.get('image_type');
    const image = form.get('image');
    // 234001, 234006 and 234011: Feishu's image API answers to a bad field, a file too large, an unknown format.
    if ((imageType !== 'message' && imageType !== 'avatar') || !(image instanceof Blob) || image.size === 0) {
      return apiError(400, 234001, 'Invalid request param.');
    }
    if (image.size > MAX_IMAGE_BYTES) return apiError(400, 234006, 'The file size exceeds the limit.');
    const bytes = Buffer.from(await image.arrayBuffer());
    if (!IMAGE_MAGIC.some((magic) => bytes.subarray(0, magic.length).equals(magic))) {
      return apiError(400, 234011, "Can't recognize image format.");
    }
    const imageKey = `img_v2_${hex(16)}`;
    this.imageKeys.add(imageKey);
    this.uploads.push({ imageKey, bytes: bytes.length });
    return ok({ image_key: imageKey });
  }

  private urgent(appId: string, messageId: string, urgentType: string, url: URL, raw: Buffer): Answer {
    const userIdType = url.searchParams.get('user_id_type') ?? '';
    if (!URGENT_ID_TYPES.has(userIdType)) return apiError(400, 230001, 'invalid parameter: user_id_type');
    const message = this.messages.find((x) => x.messageId === messageId);
    if (!message || message.appId !== appId) return apiError(400, 230001, 'invalid parameter: message not sent by this bot');
    let body: any;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      return apiError(400, 230001, 'invalid parameter: body is not JSON');
    }
    const ids = body?.user_id_list;
    if (!Array.isArray(ids) || ids.length === 0 || ids.length > 200 || !ids.every((x) => typeof x === 'string')) {
      return apiError(400, 230001, 'invalid parameter: user_id_list');
    }
    // Only a member of the message's chat can be buzzed: in a direct message, its receiver.
    const member = message.receiveIdType === userIdType ? message.receiveId : undefined;
    const invalid = ids.filter((id: string) => id !== member);
    if (invalid.length === ids.length) return apiError(400, 230001, 'invalid parameter: all user ids are invalid');
    this.urgents.push({ urgentType, messageId, userIdType, userIds: ids });
    return ok({ invalid_user_id_list: invalid });
  }
}
