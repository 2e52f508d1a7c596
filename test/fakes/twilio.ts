import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { FakeHttpService, type FakeReply } from '../helpers/fake-http.js';

/**
 * Twilio's Messages and Calls resources on 127.0.0.1, checking requests as the real API does:
 * HTTP Basic AccountSid:AuthToken matching the account in the path (else 20003), a form-encoded
 * body, To in E.164 (21211), From one of the account's numbers, Body ≤ 1 600 characters (21617),
 * and for calls exactly one of Url, Twiml and ApplicationSid, with Twiml well-formed. Numbers
 * can be unsubscribed (21610) or scripted to answer anything else.
 */

export interface TwilioRequest {
  resource: 'Messages' | 'Calls';
  to: string;
  from: string;
  /** Body for a message; the text the call says for a call. */
  text: string;
  twiml?: string;
  status: number;
  at: number;
}

const E164 = /^\+[1-9]\d{1,14}$/;
const XML_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** A Twilio error body (spec §9.3). */
export function twilioError(status: number, code: number, message: string): FakeReply {
  return {
    status,
    body: JSON.stringify({ code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status }),
  };
}

/** The text of `<Response><Say>…</Say></Response>`, entities decoded; throws if not well-formed. */
function sayText(twiml: string): string {
  const inner = /^<Response><Say(?: [^>]*)?>([^<]*)<\/Say><\/Response>$/.exec(twiml)?.[1];
  if (inner === undefined) throw new Error('Twiml is not a <Response> with one <Say>');
  return inner.replace(/&(\w+|#\d+);|&/g, (_match, name: string | undefined) => {
    if (!name) throw new Error('bare & in Twiml');
    if (name.startsWith('#')) return String.fromCodePoint(Number(name.slice(1)));
    const c = XML_ENTITIES[name];
    if (!c) throw new Error(`unknown entity &${name};`);
    return c;
  });
}

export class FakeTwilio extends FakeHttpService {
  readonly requests: TwilioRequest[] = [];
  readonly unsubscribed = new Set<string>();
  private readonly scripts = new Map<string, FakeReply[]>();

  private constructor(private readonly account: { sid: string; token: string; numbers: string[] }) {
    super({ 'content-type': 'application/json' });
  }

  static start(account: { sid: string; token: string; numbers: string[] }): Promise<FakeTwilio> {
    return new FakeTwilio(account).listen();
  }

  /** Answers the next requests to `to` with these replies, in order. */
  script(to: string, ...replies: FakeReply[]): void {
    this.scripts.set(to, replies);
  }

  to(number: string): TwilioRequest[] {
    return this.requests.filter((r) => r.to === number);
  }

  protected handle(req: IncomingMessage, body: Buffer): FakeReply {
    const match = /^\/2010-04-01\/Accounts\/(AC[0-9a-f]{32})\/(Messages|Calls)\.json$/.exec(req.url ?? '');
    if (req.method !== 'POST' || !match) return twilioError(404, 20404, 'The requested resource was not found');
    const [, sid, resource] = match as unknown as [string, string, 'Messages' | 'Calls'];
    const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const [user, pass] = Buffer.from(basic ?? '', 'base64').toString().split(':');
    if (user !== this.account.sid || pass !== this.account.token || sid !== this.account.sid) {
      return twilioError(401, 20003, 'Authenticate');
    }
    if (req.headers['content-type'] !== 'application/x-www-form-urlencoded') {
      return twilioError(400, 21604, "A 'To' phone number is required.");
    }
    const form = new URLSearchParams(body.toString('utf8'));
    const to = form.get('To') ?? '';
    const from = form.get('From') ?? '';
    if (!to) return twilioError(400, 21604, "A 'To' phone number is required.");
    if (!E164.test(to)) return twilioError(400, 21211, `The 'To' number ${to} is not a valid phone number.`);
    if (!this.account.numbers.includes(from)) {
      return resource === 'Messages'
        ? twilioError(400, 21606, `The From phone number ${from} is not a valid, SMS-capable inbound phone number or short code for your account.`)
        : twilioError(400, 21210, `The source phone number provided, ${from}, is not yet verified for your account.`);
    }
    let text: string;
    const twiml = form.get('Twiml') ?? undefined;
    if (resource === 'Messages') {
      text = form.get('Body') ?? '';
      if (!text) return twilioError(400, 21602, 'Message body is required.');
      if ([...text].length > 1600) return twilioError(400, 21617, 'The concatenated message body exceeds the 1600 character limit.');
    } else {
      const given = ['Url', 'Twiml', 'ApplicationSid'].filter((k) => form.has(k));
      if (given.length !== 1) return twilioError(400, 21205, 'Exactly one of Url, Twiml or ApplicationSid is required.');
      try {
        text = sayText(twiml ?? '');
      } catch (error) {
        return twilioError(400, 12100, `Document parse failure: ${(error as Error).message}`);
      }
    }
    const reply = this.answer(resource, to, from, text);
    this.requests.push({ resource, to, from, text, twiml, status: reply.status, at: Date.now() });
    return reply;
  }

  private answer(resource: 'Messages' | 'Calls', to: string, from: string, text: string): FakeReply {
    const scripted = this.scripts.get(to)?.shift();
    if (scripted) return scripted;
    if (resource === 'Messages' && this.unsubscribed.has(to)) {
      return twilioError(400, 21610, 'Attempt to send to unsubscribed recipient');
    }
    const prefix = resource === 'Messages' ? 'SM' : 'CA';
    const sid = `${prefix}${randomBytes(16).toString('hex')}`;
    const common = {
      sid,
      account_sid: this.account.sid,
      to,
      from,
      status: 'queued',
      date_created: new Date().toUTCString().replace('GMT', '+0000'),
      uri: `/2010-04-01/Accounts/${this.account.sid}/${resource}/${sid}.json`,
    };
    const body =
      resource === 'Messages'
        ? { ...common, body: text, num_segments: '1', direction: 'outbound-api', error_code: null, error_message: null }
        : { ...common, direction: 'outbound-api', duration: null };
    return { status: 201, body: JSON.stringify(body) };
  }
}
