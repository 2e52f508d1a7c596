import nodemailer from 'nodemailer';
import type { ChannelModule, ChannelProvider, Outcome, Recipient } from './channel.js';
import { Fields } from './fields.js';

const EMAIL = /^[^\s@<>]+@[^\s@<>]+\.[^\s@<>]+$/;
// Enhanced status codes that say the mailbox or domain does not exist (RFC 3463).
const DEAD_ADDRESS_CODES = /\b5\.(1\.[0-3]|1\.10|2\.1)\b/;
// Mailbox full: transient on the recipient's side, never a dead address.
const MAILBOX_FULL = /\b[45]\.2\.2\b/;

interface SmtpError {
  code?: string;
  responseCode?: number;
  response?: string;
  rejectedErrors?: SmtpError[];
  message?: string;
}

/**
 * Maps an SMTP failure to an outcome: 4xx replies and network errors retry; a 5xx naming a
 * missing mailbox or domain is a dead address; other 5xx replies (credentials, policy, size) fail.
 */
export function classifySmtpError(raw: unknown): Outcome {
  let error = raw as SmtpError;
  if (error.rejectedErrors?.[0]) error = error.rejectedErrors[0];
  const reply = error.response ?? error.message ?? String(raw);
  const details = { code: error.code, responseCode: error.responseCode, response: reply.slice(0, 512) };
  const code = error.responseCode;
  if (code === undefined) return { kind: 'retry', error: reply, details };
  if (code >= 400 && code < 500) return { kind: 'retry', error: reply, details };
  if (MAILBOX_FULL.test(reply)) return { kind: 'retry', error: reply, details };
  if (code >= 550 && code <= 553 && DEAD_ADDRESS_CODES.test(reply)) return { kind: 'dead', error: reply, details };
  return { kind: 'failed', error: reply, details };
}

function validateEmail(recipient: Recipient): string | undefined {
  return EMAIL.test(recipient.value) ? undefined : 'must be an email address';
}

export const smtpModule: ChannelModule = {
  type: 'smtp',
  create(name, raw): ChannelProvider {
    const f = new Fields(`providers.${name}`, raw);
    const host = f.string('host');
    const secure = f.optionalBoolean('secure');
    const port = f.optionalNumber('port', 1) ?? (secure ? 465 : 587);
    const username = f.optionalString('username');
    const password = f.optionalString('password');
    const from = f.string('from');
    const startTls = f.optionalBoolean('startTls') ?? false;
    const timeoutMs = f.optionalNumber('timeoutMs', 1) ?? 30_000;
    const transport = nodemailer.createTransport({
      host,
      port,
      secure: secure ?? port === 465,
      requireTLS: startTls,
      auth: username ? { user: username, pass: password ?? '' } : undefined,
      pool: true,
      maxConnections: f.optionalNumber('maxConnections', 1) ?? 5,
      connectionTimeout: timeoutMs,
      greetingTimeout: timeoutMs,
      socketTimeout: timeoutMs,
    });
    return {
      name,
      type: 'smtp',
      recipientTypes: ['email'],
      validateTarget: validateEmail,
      async send({ delivery, content }): Promise<Outcome> {
        try {
          const info = await transport.sendMail({
            from,
            to: delivery.recipient.value,
            subject: content.subject,
            ...(content.msgType === 'html' ? { html: content.body } : { text: content.body }),
            headers: { 'X-Herald-Delivery': delivery.id },
          });
          if (info.rejected.length > 0) return classifySmtpError({ rejectedErrors: info.rejectedErrors });
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
