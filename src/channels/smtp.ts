import nodemailer from 'nodemailer';
import type { ChannelModule, ChannelProvider, Outcome, Recipient } from './channel.js';
import { ConfigError } from './channel.js';
import { Fields } from './fields.js';

const EMAIL = /^[^\s@<>]+@[^\s@<>]+\.[^\s@<>]+$/;
// Below dispatcher.sendTimeout's 30 s default, so a silent server shows up as nodemailer's own
// connection or socket timeout rather than as the dispatcher's abort.
const DEFAULT_TIMEOUT_MS = 15_000;
const DEFAULT_MAX_CONNECTIONS = 5;
// "550 5.1.1 <a@b>: ..." or "550-5.1.1 ...": the reply code, then the RFC 3463 enhanced status code.
const ENHANCED_CODE = /^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b/;
// Enhanced codes that say the recipient's mailbox or domain does not exist or is disabled:
// bad mailbox (5.1.0, 5.1.1), unknown domain (5.1.2), bad syntax (5.1.3), null MX (5.1.10),
// mailbox disabled (5.2.1).
const DEAD_ADDRESS_CODES = new Set(['5.1.0', '5.1.1', '5.1.2', '5.1.3', '5.1.10', '5.2.1']);
// Errors nodemailer raises before or without a server reply that a retry would meet again:
// missing credentials, a bad envelope address, a message over the advertised SIZE, bad options.
const LOCAL_PERMANENT_CODES = new Set(['EAUTH', 'ENOAUTH', 'EENVELOPE', 'EMESSAGE', 'ECONFIG']);

/** What nodemailer attaches to an error (code, and the server's reply when there was one). */
interface SmtpError {
  message?: string;
  code?: string;
  command?: string;
  responseCode?: number;
  response?: string;
}

/**
 * Maps an SMTP failure to an outcome:
 * - no server reply: a network error or timeout retries; a local check nodemailer made fails;
 * - 4xx retries, and so does a full mailbox (452 4.2.2, 552 5.2.2), which the dispatcher's retry
 *   budget ends, as it must never mark the address dead;
 * - a 550–553 reply to RCPT TO with a dead-mailbox enhanced code (5.1.1, 5.1.3, ...) is a dead
 *   address; the same code on MAIL FROM is about Herald's own `from` and only fails;
 * - every other 5xx (credentials 535, auth required 530, policy 5.7.x, size 5.3.4) fails.
 */
export function classifySmtpError(raw: unknown): Outcome {
  const error = (raw ?? {}) as SmtpError;
  const message = error.message ?? String(raw);
  const code = error.responseCode;
  const details = {
    code: error.code,
    command: error.command,
    responseCode: code,
    response: error.response?.slice(0, 512),
  };
  if (code === undefined) {
    return error.code && LOCAL_PERMANENT_CODES.has(error.code)
      ? { kind: 'failed', error: message, details }
      : { kind: 'retry', error: message, details };
  }
  // A reply to RCPT TO defers only that address; 421 closes the connection: the server is busy.
  const scope = error.command === 'RCPT TO' && code !== 421 ? { scope: 'recipient' as const } : {};
  if (code < 500) return { kind: 'retry', error: message, ...scope, details };
  const enhanced = ENHANCED_CODE.exec(error.response ?? '')?.[1];
  if (enhanced === '5.2.2') return { kind: 'retry', error: message, ...scope, details };
  if (error.command === 'RCPT TO' && code >= 550 && code <= 553 && enhanced && DEAD_ADDRESS_CODES.has(enhanced)) {
    return { kind: 'dead', error: message, details };
  }
  return { kind: 'failed', error: message, details };
}

function validateEmail(recipient: Recipient): string | undefined {
  return EMAIL.test(recipient.value) ? undefined : 'must be an email address';
}

/**
 * Email over SMTP submission through a pool of connections. `secure` is implicit TLS (the default
 * on port 465); otherwise `startTls: true` requires STARTTLS, `startTls: false` never upgrades, and
 * leaving it out upgrades when the server offers STARTTLS.
 */
export const smtpModule: ChannelModule = {
  type: 'smtp',
  create(name, raw): ChannelProvider {
    const f = new Fields(`providers.${name}`, raw);
    const host = f.string('host');
    const secure = f.optionalBoolean('secure');
    const startTls = f.optionalBoolean('startTls');
    if (secure && startTls) throw new ConfigError(`providers.${name}.startTls`, 'cannot be used with secure (implicit TLS)');
    const port = f.optionalNumber('port', 1) ?? (secure ? 465 : 587);
    const username = f.optionalString('username');
    const password = f.optionalString('password');
    if (username && !password) throw new ConfigError(`providers.${name}.password`, 'is required with username');
    if (password && !username) throw new ConfigError(`providers.${name}.username`, 'is required with password');
    const from = f.string('from');
    const timeoutMs = f.optionalNumber('timeoutMs', 1) ?? DEFAULT_TIMEOUT_MS;
    // The domain of `from` names the Message-ID below; "Herald <noreply@example.org>" gives example.org.
    const fromDomain = /@([^\s@<>]+)>?\s*$/.exec(from)?.[1];
    if (!fromDomain) throw new ConfigError(`providers.${name}.from`, 'must be an email address, optionally as "Name <address>"');
    const transport = nodemailer.createTransport({
      host,
      port,
      secure: secure ?? port === 465,
      requireTLS: startTls === true,
      ignoreTLS: startTls === false,
      auth: username ? { user: username, pass: password } : undefined,
      pool: true,
      maxConnections: f.optionalNumber('maxConnections', 1) ?? DEFAULT_MAX_CONNECTIONS,
      connectionTimeout: timeoutMs,
      greetingTimeout: timeoutMs,
      socketTimeout: timeoutMs,
    });
    return {
      name,
      type: 'smtp',
      recipientTypes: ['email'],
      validateTarget: validateEmail,
      async send({ delivery, content, signal }): Promise<Outcome> {
        try {
          // One recipient per message: a rejected RCPT makes sendMail throw, so there is no
          // partially accepted result to inspect.
          const info = await transport.sendMail({
            from,
            to: delivery.recipient.value,
            subject: content.subject,
            ...(content.msgType === 'html' ? { html: content.body } : { text: content.body }),
            // The same on every attempt of a delivery, so a copy sent twice (a reply lost after
            // the server queued the message) can be recognised as one message.
            messageId: `<${delivery.id}@${fromDomain}>`,
            headers: { 'X-Herald-Delivery': delivery.id },
            // Takes the message out of the pool's queue, or closes its connection, on timeout.
            signal,
          });
          return { kind: 'sent', details: { messageId: info.messageId, response: info.response } };
        } catch (error) {
          return classifySmtpError(error);
        }
      },
      async close() {
        transport.close();
      },
    };
  },
};
