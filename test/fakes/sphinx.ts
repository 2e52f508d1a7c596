import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

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

export interface ScriptedReply {
  status: number;
  body: string;
}

/** A random node pubkey: a 33-byte compressed point's hex. */
export function randomPubkey(): string {
  return `0${2 + (randomBytes(1)[0]! % 2)}${randomBytes(32).toString('hex')}`;
}

export class FakeSphinxBot {
  readonly calls: BotCall[] = [];
  readonly sent: SentDm[] = [];
  readonly added: string[] = [];
  private readonly contacts = new Map<string, Contact>();
  private readonly scripts = new Map<string, ScriptedReply[]>();
  private readonly botPubkey = randomPubkey();

  private constructor(
    private readonly server: Server,
    readonly url: string,
    private readonly adminToken: string,
    private readonly contactPrefix: string,
  ) {}

  static async start(opts: { adminToken: string; contactPrefix: '/contact/' | '/get_contact/' }): Promise<FakeSphinxBot> {
    let fake: FakeSphinxBot | undefined;
    const server = createServer((req, res) => {
      void fake!.handle(req).then((reply) => {
        const json = reply.body.startsWith('{') || reply.body.startsWith('[');
        res.writeHead(reply.status, { 'content-type': json ? 'application/json' : 'text/plain' }).end(reply.body);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    fake = new FakeSphinxBot(server, url, opts.adminToken, opts.contactPrefix);
    return fake;
  }

  user(user: SphinxUser): SphinxUser {
    this.contacts.set(user.pubkey, { ...user, added: false, lookupsSinceAdd: 0, key: user.exchanged ? randomBytes(32).toString('hex') : undefined });
    return user;
  }

  /** Answers the next /send calls to `dest` with these replies, in order. */
  script(dest: string, ...replies: ScriptedReply[]): void {
    this.scripts.set(dest, replies);
  }

  callsFor(pubkey: string): BotCall[] {
    return this.calls.filter((c) => c.path.includes(pubkey));
  }

  private async handle(req: IncomingMessage): Promise<ScriptedReply> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const path = req.url ?? '/';
    const raw = Buffer.concat(chunks).toString('utf8');
    const reply = this.answer(req, path, raw);
    // /send and /add_contact name the pubkey in the body: log it with the path for callsFor().
    const subject = /"(?:dest|contact_info)":"([0-9a-f]{66})/.exec(raw)?.[1];
    this.calls.push({ method: req.method ?? '', path: subject ? `${path}#${subject}` : path, status: reply.status, at: Date.now() });
    return reply;
  }

  private answer(req: IncomingMessage, path: string, raw: string): ScriptedReply {
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

  private lookup(pubkey: string): ScriptedReply {
    const c = this.contacts.get(pubkey);
    if (!c || !(c.added || c.routeKnown || c.key)) return { status: 404, body: '{"error":"contact not found"}' };
    if (c.added && !c.key) {
      c.lookupsSinceAdd++;
      if (c.keyOnLookup !== undefined && c.lookupsSinceAdd >= c.keyOnLookup) c.key = randomBytes(32).toString('hex');
    }
    const record = { version: 0, my_idx: 1, pubkey, lsp: c.lsp, scid: Number(c.scid), contact_key: c.key ?? null };
    return { status: 200, body: JSON.stringify(record) };
  }

  private addContact(body: Record<string, unknown>): ScriptedReply {
    const info = String(body.contact_info ?? '');
    const [pubkey, lsp, scid] = info.split('_');
    const c = this.contacts.get(pubkey ?? '');
    if (!c || c.lsp !== lsp || c.scid !== scid) return { status: 400, body: 'invalid contact_info' };
    this.added.push(info);
    c.added = true;
    return { status: 200, body: '{}' };
  }

  private send(body: Record<string, unknown>): ScriptedReply {
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

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
