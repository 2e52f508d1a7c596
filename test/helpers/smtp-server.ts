import { simpleParser, type ParsedMail } from 'mailparser';
import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerAddress } from 'smtp-server';

/** A reply to RCPT TO: the code and its text, which starts with the RFC 3463 enhanced code. */
export interface SmtpReply {
  code: number;
  text: string;
}

/**
 * RCPT TO replies by the address's local part, as a submission server gives them: a missing
 * mailbox, a busy one, throttling (421 closes the connection), a full mailbox, a policy refusal.
 * Any other address is accepted.
 */
export const RCPT_REPLIES: Readonly<Record<string, SmtpReply>> = {
  dead: { code: 550, text: '5.1.1 The email account that you tried to reach does not exist' },
  busy: { code: 451, text: '4.3.0 Temporary local problem, please try again later' },
  throttled: { code: 421, text: '4.7.0 Too many messages, slow down; closing connection' },
  full: { code: 552, text: '5.2.2 Mailbox full' },
  policy: { code: 554, text: '5.7.1 Message rejected by policy' },
};

/** RCPT TO for this local part is never answered, like a server that hangs mid-transaction. */
export const STALL_LOCAL_PART = 'stall';

export interface ReceivedMail {
  /** Envelope sender and recipients, as MAIL FROM and RCPT TO gave them. */
  mailFrom: string;
  rcptTo: string[];
  /** The SASL mechanism and user the session authenticated with. */
  authMethod: string;
  user: string;
  /** Whether the session had been upgraded to TLS. */
  secure: boolean;
  /** The message as it arrived after DATA, dot-stuffing already removed. */
  raw: Buffer;
  parsed: ParsedMail;
}

export interface FakeSmtpOptions {
  username: string;
  password: string;
  /** Replies by local part; defaults to RCPT_REPLIES. */
  rcptReplies?: Readonly<Record<string, SmtpReply>>;
  /** A certificate to offer STARTTLS with; AUTH is then refused until the session is upgraded. */
  tls?: { key: string; cert: string };
}

export interface FakeSmtp {
  port: number;
  received: ReceivedMail[];
  /** Every RCPT TO address, accepted or not, in order. */
  rcptAttempts: string[];
  /** Failed AUTH attempts, by user name. */
  authFailures: string[];
  close(): Promise<void>;
}

/** Largest message accepted, advertised in EHLO as SIZE. */
const MAX_MESSAGE_BYTES = 10 * 1024 * 1024;

function smtpError(reply: SmtpReply): Error {
  return Object.assign(new Error(reply.text), { responseCode: reply.code });
}

/**
 * A submission server on 127.0.0.1 that requires AUTH PLAIN or LOGIN (535 5.7.8 for a wrong user
 * or password), answers RCPT TO per address, and records each message it accepts. Its replies
 * carry the enhanced status codes written above, so the server does not add its own.
 */
export async function startFakeSmtp(options: FakeSmtpOptions): Promise<FakeSmtp> {
  const replies = options.rcptReplies ?? RCPT_REPLIES;
  const received: ReceivedMail[] = [];
  const rcptAttempts: string[] = [];
  const authFailures: string[] = [];
  const server = new SMTPServer({
    name: 'mx.test.example',
    logger: false,
    authMethods: ['PLAIN', 'LOGIN'],
    authRequiredMessage: '5.7.0 Authentication required',
    size: MAX_MESSAGE_BYTES,
    hideENHANCEDSTATUSCODES: true,
    // Herald closes its pooled connections first; a straggler should not hold a test for 30 s.
    closeTimeout: 1_000,
    ...(options.tls ? { key: options.tls.key, cert: options.tls.cert } : { hideSTARTTLS: true, allowInsecureAuth: true }),
    onAuth(auth, _session, callback) {
      if (auth.username === options.username && auth.password === options.password) {
        callback(null, { user: { name: auth.username, method: auth.method } });
        return;
      }
      authFailures.push(auth.username ?? '');
      callback(smtpError({ code: 535, text: '5.7.8 Authentication credentials invalid' }));
    },
    onMailFrom(_address, _session, callback) {
      callback();
    },
    onRcptTo(address: SMTPServerAddress, _session, callback) {
      rcptAttempts.push(address.address);
      const local = address.address.split('@')[0]!;
      if (local === STALL_LOCAL_PART) return;
      const reply = replies[local];
      callback(reply ? smtpError(reply) : undefined);
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        if (stream.sizeExceeded) {
          callback(smtpError({ code: 552, text: '5.3.4 Message too big for system' }));
          return;
        }
        const raw = Buffer.concat(chunks);
        simpleParser(raw).then(
          (parsed) => {
            const user = session.user as { name: string; method: string };
            received.push({
              mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
              rcptTo: session.envelope.rcptTo.map((r) => r.address),
              authMethod: user.method,
              user: user.name,
              secure: session.secure,
              raw,
              parsed,
            });
            callback(null, `2.0.0 OK queued as ${session.id}`);
          },
          (error: Error) => callback(smtpError({ code: 554, text: `5.6.0 Malformed message: ${error.message}` })),
        );
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.server.address() as AddressInfo).port,
    received,
    rcptAttempts,
    authFailures,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
