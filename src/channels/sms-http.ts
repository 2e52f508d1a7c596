import { Liquid, type Template } from 'liquidjs';
import type { ChannelModule, ChannelProvider, Outcome, Recipient, SendRequest } from './channel.js';
import { ConfigError } from './channel.js';
import { Fields } from './fields.js';
import { isOutcome, makeAgent, parseRetryAfter, responseDetails, sendHttp, type HttpResponse } from './http.js';

const TIMEOUT_MS = 15_000;
const METHODS = ['POST', 'PUT', 'GET'] as const;
// Gateways differ: many take E.164, many a national number without the plus.
const PHONE = /^\+?\d{5,20}$/;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

type Escape = (value: string) => string;

const XML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };

/**
 * How a value printed by `{{ … }}` is escaped, decided by the request's Content-Type, so that a
 * message holding quotes, newlines or `&` cannot break the body: JSON gets a JSON string's
 * contents (the template writes the quotes: `"text": "{{ body }}"`), a form gets
 * percent-encoding, XML gets entities, anything else is printed as is. The URL is always
 * percent-encoded. `{{ x | raw }}` prints a value unescaped (e.g. `{{ params | json | raw }}`).
 */
export function escapeFor(contentType: string): Escape {
  const type = contentType.split(';')[0]!.trim().toLowerCase();
  if (type === 'application/json' || type.endsWith('+json')) return (v) => JSON.stringify(v).slice(1, -1);
  if (type === 'application/x-www-form-urlencoded') return encodeURIComponent;
  if (type === 'application/xml' || type === 'text/xml' || type.endsWith('+xml')) {
    return (v) => v.replace(/[&<>"']/g, (c) => XML_ESCAPES[c]!);
  }
  return (v) => v;
}

/** A Liquid engine printing through `escape`; it reads no files and fails on a missing variable. */
function makeLiquid(escape: Escape): Liquid {
  return new Liquid({
    strictVariables: true,
    strictFilters: true,
    ownPropertyOnly: true,
    templates: {},
    outputEscape: (value: unknown) => escape(typeof value === 'string' ? value : String(value)),
  });
}

/** Reads `headers` as a map of header name → string value; errors name the header, never its value. */
function readHeaders(prefix: string, raw: unknown): Record<string, string> {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(`${prefix}.headers`, 'must be a map of header names to values');
  const headers: Record<string, string> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (!HEADER_NAME.test(key)) throw new ConfigError(`${prefix}.headers.${key}`, 'is not a valid header name');
    if (typeof value !== 'string' && typeof value !== 'number') throw new ConfigError(`${prefix}.headers.${key}`, 'must be a string');
    headers[key.toLowerCase()] = String(value);
  }
  return headers;
}

/** What the gateway answered: 2xx sent; 408, 429 and 5xx transient (after Retry-After); others fail. */
export function classifyGatewayResponse(res: HttpResponse): Outcome {
  const details = responseDetails(res);
  if (res.status >= 200 && res.status < 300) return { kind: 'sent', details };
  const error = `HTTP ${res.status}`;
  if (res.status === 408 || res.status === 429 || res.status >= 500) {
    return { kind: 'retry', error, retryAfterMs: parseRetryAfter(res.headers['retry-after']), details };
  }
  return { kind: 'failed', error, details };
}

function validatePhone(recipient: Recipient): string | undefined {
  return PHONE.test(recipient.value) ? undefined : 'must be a phone number: digits, optionally after a +';
}

function parseTemplate(liquid: Liquid, text: string, key: string): Template[] {
  try {
    return liquid.parse(text);
  } catch (error) {
    throw new ConfigError(key, `does not parse: ${(error as Error).message.split('\n')[0]}`);
  }
}

export const smsHttpModule: ChannelModule = {
  type: 'sms_http',
  create(name, raw): ChannelProvider {
    const prefix = `providers.${name}`;
    const f = new Fields(prefix, raw);
    const urlText = f.string('url');
    if (!/^https?:\/\//i.test(urlText)) throw new ConfigError(`${prefix}.url`, 'must be an http(s) URL');
    const method = f.oneOf('method', METHODS, 'POST');
    const headers = readHeaders(prefix, raw.headers);
    const bodyText = f.optionalString('bodyTemplate');
    if (method === 'GET' && bodyText !== undefined) throw new ConfigError(`${prefix}.bodyTemplate`, 'must be absent for GET');
    if (method !== 'GET' && !bodyText) throw new ConfigError(`${prefix}.bodyTemplate`, `is required for ${method}`);
    if (method !== 'GET') headers['content-type'] ??= 'application/json';
    const urlLiquid = makeLiquid(encodeURIComponent);
    const url = parseTemplate(urlLiquid, urlText, `${prefix}.url`);
    const bodyLiquid = makeLiquid(escapeFor(headers['content-type'] ?? ''));
    const body = bodyText === undefined ? undefined : parseTemplate(bodyLiquid, bodyText, `${prefix}.bodyTemplate`);
    const agent = makeAgent(TIMEOUT_MS);
    return {
      name,
      type: 'sms_http',
      recipientTypes: ['phone'],
      validateTarget: validatePhone,
      async send({ delivery, content, signal }: SendRequest): Promise<Outcome> {
        const scope = {
          phone: delivery.recipient.value,
          body: content.body,
          subject: content.subject,
          templateCode: content.templateCode,
          params: content.params,
        };
        let target: string;
        let payload: string | undefined;
        try {
          target = urlLiquid.renderSync(url, scope) as string;
          payload = body && (bodyLiquid.renderSync(body, scope) as string);
        } catch (error) {
          return { kind: 'failed', error: `gateway template failed to render: ${(error as Error).message.split('\n')[0]}` };
        }
        const res = await sendHttp(agent, target, { method, headers, body: payload, signal });
        return isOutcome(res) ? res : classifyGatewayResponse(res);
      },
      close: () => agent.close(),
    };
  },
};
