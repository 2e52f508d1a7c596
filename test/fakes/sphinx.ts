import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { FakeHttpService, type FakeReply } from '../helpers/fake-http.js';

/**
 * A Sphinx v2 bot on 127.0.0.1 (spec §12): every call needs `x-admin-token`; the contact lookup
 * (`/contact/{pubkey}` on older bots, `/get_contact/{pubkey}` on newer ones) answers 404 for a
 * contact the bot has never heard of, else the record with `contact_key` set once the key
 * exchange that /add_contact starts has completed, which takes a set number of lookups.
 * /send checks its body and answers COMPLETE unless scripted otherwise.
 */

export interface SphinxUser {
  pubkey: string;
  lsp: string;
  scid: string;
  /** The bot already holds the key. */
  exchanged?: boolean;
  /** The bot knows the route (lsp, scid) but has no key yet. */
  routeKnown?: boolean;
  /** After /add_contact, the lookup that first shows the key (1 = the next one); never when absent. */
  keyOnLookup?: number;
}

export interface SentDm {
  dest: string;
  content: string;
  body: Record<string, unknown>;
  at: number;
}

export interface BotCall {
  method: string;
  path: string;
  status: number;
  at: number;
}

interface Contact extends SphinxUser {
  added: boolean;
  lookupsSinceAdd: number;
  key?: string;
}

/** A random node pubkey: a 33-byte compressed point's hex. */
export function randomPubkey(): string {
  return `0${2 + (randomBytes(1)[0]! % 2)}${randomBytes(32).toString('hex')}`;
}

export class FakeSphinxBot extends FakeHttpService {
  readonly calls: BotCall[] = [];
  readonly sent: SentDm[] = [];
  readonly added: string[] = [];
  private readonly contacts = new Map<string, Contact>();
  private readonly scripts = new Map<string, FakeReply[]>();
  private readonly botPubkey = randomPubkey();

  private constructor(
    private readonly adminToken: string,
    private readonly contactPrefix: string,
  ) {
    super();
  }

  static start(opts: { adminToken: string; contactPrefix: '/contact/' | '/get_contact/' }): Promise<FakeSphinxBot> {
    return new FakeSphinxBot(opts.adminToken, opts.contactPrefix).listen();
  }

  protected override replyHeaders(reply: FakeReply): OutgoingHttpHeaders {
    const json = reply.body?.startsWith('{') || reply.body?.startsWith('[');
    return { 'content-type': json ? 'application/json' : 'text/plain' };
  }

  user(user: SphinxUser): SphinxUser {
    this.contacts.set(user.pubkey, { ...user, added: false, lookupsSinceAdd: 0, key: user.exchanged ? randomBytes(32).toString('hex') : undefined });
    return user;
  }

  /** Answers the next /send calls to `dest` with these replies, in order. */
  script(dest: string, ...replies: FakeReply[]): void {
    this.scripts.set(dest, replies);
  }

  callsFor(pubkey: string): BotCall[] {
    return this.calls.filter((c) => c.path.includes(pubkey));
  }

  protected handle(req: IncomingMessage, body: Buffer): FakeReply {
    const path = req.url ?? '/';
    const raw = body.toString('utf8');
    const reply = this.answer(req, path, raw);
    // /send and /add_contact name the pubkey in the body: log it with the path for callsFor().
    const subject = /"(?:dest|contact_info)":"([0-9a-f]{66})/.exec(raw)?.[1];
    this.calls.push({ method: req.method ?? '', path: subject ? `${path}#${subject}` : path, status: reply.status, at: Date.now() });
    return reply;
  }

  private answer(req: IncomingMessage, path: string, raw: string): FakeReply {
    if (req.headers['x-admin-token'] !== this.adminToken) return { status: 401, body: 'Unauthorized' };
    if (req.method === 'GET' && path.startsWith(this.contactPrefix)) return this.lookup(path.slice(this.contactPrefix.length));
    if (req.method !== 'POST' || (path !== '/add_contact' && path !== '/send')) return { status: 404, body: 'Not Found' };
    if (req.headers['content-type'] !== 'application/json') return { status: 400, body: '{"error":"expected JSON"}' };
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      return { status: 400, body: '{"error":"invalid JSON"}' };
    }
    return path === '/add_contact' ? this.addContact(body) : this.send(body);
  }

  private lookup(pubkey: string): FakeReply {
    const c = this.contacts.get(pubkey);
    if (!c || !(c.added || c.routeKnown || c.key)) return { status: 404, body: '{"error":"contact not found"}' };
    if (c.added && !c.key) {
      c.lookupsSinceAdd++;
      if (c.keyOnLookup !== undefined && c.lookupsSinceAdd >= c.keyOnLookup) c.key = randomBytes(32).toString('hex');
    }
    const record = { version: 0, my_idx: 1, pubkey, lsp: c.lsp, scid: Number(c.scid), contact_key: c.key ?? null };
    return { status: 200, body: JSON.stringify(record) };
  }

  private addContact(body: Record<string, unknown>): FakeReply {
    const info = String(body.contact_info ?? '');
    const [pubkey, lsp, scid] = info.split('_');
    const c = this.contacts.get(pubkey ?? '');
    if (!c || c.lsp !== lsp || c.scid !== scid) return { status: 400, body: 'invalid contact_info' };
    this.added.push(info);
    c.added = true;
    return { status: 200, body: '{}' };
  }

  private send(body: Record<string, unknown>): FakeReply {
    const dest = body.dest;
    if (typeof dest !== 'string' || !dest) return { status: 400, body: '{"error":"dest is required"}' };
    if (typeof body.amt_msat !== 'number' || typeof body.is_tribe !== 'boolean' || typeof body.content !== 'string') {
      return { status: 400, body: '{"error":"amt_msat, is_tribe and content are required"}' };
    }
    const scripted = this.scripts.get(dest)?.shift();
    if (scripted) return scripted;
    if (!this.contacts.get(dest)?.key) return { status: 200, body: JSON.stringify({ status: 'FAILED', tag: '', message: 'no contact key' }) };
    this.sent.push({ dest, content: body.content, body, at: Date.now() });
    const tag = randomBytes(8).toString('hex');
    return {
      status: 200,
      body: JSON.stringify({ status: 'COMPLETE', tag, type: 0, message: 'sent', sender: this.botPubkey, uuid: randomUUID() }),
    };
  }
}
