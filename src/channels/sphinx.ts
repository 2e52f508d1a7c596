import type { ChannelModule, ChannelProvider, Outcome, Recipient, SendRequest } from './channel.js';
import { ConfigError } from './channel.js';
import { Fields } from './fields.js';
import { isOutcome, makeAgent, parseRetryAfter, responseDetails, sendHttp, type HttpResponse } from './http.js';

const TIMEOUT_MS = 15_000;
// Older bots serve /contact/{pubkey}; newer ones /get_contact/{pubkey}.
const DEFAULT_CONTACT_PATH = '/contact/{pubkey}';
const DEFAULT_RECHECK_MS = 60_000;
// A recipient whose app never answers the key exchange has no route: give up after a day.
const DEFAULT_KEY_EXCHANGE_TIMEOUT_MS = 24 * 60 * 60 * 1000;
export const WAITING_KEY_EXCHANGE = 'WAITING_KEY_EXCHANGE';
// A node pubkey (33-byte compressed point, hex), optionally with its route hint: the
// `pubkey_lspPubkey_scid` contact info a Sphinx app shares.
const RECIPIENT = /^(0[23][0-9a-f]{64})(?:_(0[23][0-9a-f]{64}_\d+))?$/;

/** What the bot's contact record says, as read by Herald. */
interface Contact {
  /** Set once the key exchange completed. */
  key?: string;
  /** `lsp_scid`, when the bot knows how to reach the contact. */
  route?: string;
}

interface ContactReply {
  contact_key?: string | null;
  lsp?: string;
  scid?: string | number;
}

interface SendReply {
  status?: string;
  tag?: string;
  message?: string;
  error?: string;
}

function parseJson<T>(res: HttpResponse): T | undefined {
  try {
    return (JSON.parse(res.body) as T | null) ?? undefined;
  } catch {
    return undefined;
  }
}

/** The outcome of a bot answer that is an error whatever the call: bad admin token, or the bot is down. */
function botError(res: HttpResponse, call: string): Outcome | undefined {
  const details = responseDetails(res);
  if (res.status === 401 || res.status === 403) return { kind: 'failed', error: `${call}: HTTP ${res.status} (check adminToken)`, details };
  if (res.status === 429 || res.status >= 500) {
    return { kind: 'retry', error: `${call}: HTTP ${res.status}`, retryAfterMs: parseRetryAfter(res.headers['retry-after']), details };
  }
  return undefined;
}

/**
 * What POST /send answered (with wait:true the bot answers once the message settled):
 * COMPLETE is delivered. PENDING means the message is already in flight on the network but its
 * confirmation had not come back when the bot stopped waiting; sending again could deliver it
 * twice, so it counts as sent, with the status and tag kept in the details (GET /sends/{tag} on
 * the bot tells how it ended). FAILED, or an `error`, is retried within the retry budget.
 */
export function classifySendReply(res: HttpResponse): Outcome {
  const known = botError(res, 'send');
  if (known) return known;
  const details = responseDetails(res);
  if (res.status < 200 || res.status >= 300) return { kind: 'failed', error: `send: HTTP ${res.status}`, details };
  const reply = parseJson<SendReply>(res) ?? {};
  if (reply.status === 'FAILED' || (!reply.status && reply.error)) {
    return { kind: 'retry', error: `send: ${reply.message || reply.error || 'FAILED'}`, details };
  }
  return { kind: 'sent', details: { status: reply.status ?? 'COMPLETE', tag: reply.tag } };
}

function validateRecipient(recipient: Recipient): string | undefined {
  return RECIPIENT.test(recipient.value) ? undefined : 'must be a 66-hex-digit node pubkey, optionally followed by _<lsp pubkey>_<scid>';
}

export const sphinxModule: ChannelModule = {
  type: 'sphinx',
  create(name, raw): ChannelProvider {
    const prefix = `providers.${name}`;
    const f = new Fields(prefix, raw);
    const baseUrl = f.string('baseUrl').replace(/\/+$/, '');
    const adminToken = f.string('adminToken');
    const contactPath = f.optionalString('contactPath') ?? DEFAULT_CONTACT_PATH;
    if (!contactPath.startsWith('/') || !contactPath.includes('{pubkey}')) {
      throw new ConfigError(`${prefix}.contactPath`, 'must be a path holding {pubkey}, e.g. /get_contact/{pubkey}');
    }
    const recheckAfterMs = f.optionalNumber('recheckAfter', 1) ?? DEFAULT_RECHECK_MS;
    const keyExchangeTimeoutMs = f.optionalNumber('keyExchangeTimeout', 1) ?? DEFAULT_KEY_EXCHANGE_TIMEOUT_MS;
    const agent = makeAgent(TIMEOUT_MS);
    const headers = { 'x-admin-token': adminToken, 'content-type': 'application/json' };

    /** GET the contact: its key and route when the bot knows it, `{}` when it does not. */
    async function lookup(pubkey: string, signal: AbortSignal): Promise<Contact | Outcome> {
      const path = contactPath.replace('{pubkey}', pubkey);
      const res = await sendHttp(agent, `${baseUrl}${path}`, { method: 'GET', headers, signal });
      if (isOutcome(res)) return res;
      const known = botError(res, 'contact lookup');
      if (known) return known;
      // Any other non-2xx is the bot saying it does not know this contact.
      if (res.status < 200 || res.status >= 300) return {};
      const reply = parseJson<ContactReply>(res) ?? {};
      return {
        key: reply.contact_key || undefined,
        route: reply.lsp && reply.scid !== undefined && reply.scid !== '' ? `${reply.lsp}_${reply.scid}` : undefined,
      };
    }

    return {
      name,
      type: 'sphinx',
      recipientTypes: ['sphinx_pubkey'],
      validateTarget: validateRecipient,
      async send({ delivery, content, signal }: SendRequest): Promise<Outcome> {
        const [, pubkey, routeHint] = RECIPIENT.exec(delivery.recipient.value) ?? [];
        if (!pubkey) return { kind: 'failed', error: validateRecipient(delivery.recipient)! };
        let contact = await lookup(pubkey, signal);
        if ('kind' in contact) return contact;
        if (!contact.key) {
          const hint = routeHint ?? contact.route;
          if (!hint) {
            return { kind: 'failed', error: 'the bot does not know this contact and no route hint was given (send pubkey_lsp_scid)' };
          }
          // Starts the key exchange; the recipient's app answers it asynchronously.
          const added = await sendHttp(agent, `${baseUrl}/add_contact`, {
            headers,
            body: JSON.stringify({ contact_info: `${pubkey}_${hint}` }),
            signal,
          });
          if (isOutcome(added)) return added;
          const refused = botError(added, 'add_contact');
          if (refused) return refused;
          // Another refusal (a bot may refuse a contact it already has) is not final: the
          // lookup decides, and a contact that never gets a key times out below.
          contact = await lookup(pubkey, signal);
          if ('kind' in contact) return contact;
        }
        if (!contact.key) {
          if (Date.now() - delivery.acceptedAt.getTime() > keyExchangeTimeoutMs) {
            return { kind: 'dead', error: `key exchange not completed within ${keyExchangeTimeoutMs} ms: no route to this contact` };
          }
          return { kind: 'waiting', reason: WAITING_KEY_EXCHANGE, recheckAfterMs, details: { pubkey } };
        }
        const res = await sendHttp(agent, `${baseUrl}/send`, {
          headers,
          body: JSON.stringify({ dest: pubkey, amt_msat: 0, content: content.body, is_tribe: false, wait: true }),
          signal,
        });
        return isOutcome(res) ? res : classifySendReply(res);
      },
      close: () => agent.close(),
    };
  },
};
