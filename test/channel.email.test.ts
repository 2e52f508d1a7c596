import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { AddressObject } from 'mailparser';
import { stringify } from 'yaml';
import type { Outcome, ProviderDeps } from '../src/channels/channel.js';
import { classifySmtpError, smtpModule } from '../src/channels/smtp.js';
import { configErrorNaming } from './helpers/config-error.js';
import { BACKENDS, createTestDb, type TestDb } from './helpers/db.js';
import { APP, callApi, createTemplates, startTestHerald, testConfig, waitFor, type ApiReply, type TestHerald } from './helpers/herald.js';
import { spawnHerald, type HeraldProcess } from './helpers/process.js';
import { STALL_LOCAL_PART, startFakeSmtp, type FakeSmtp } from './helpers/smtp-server.js';

const USER = 'herald@herald.test';
const PASSWORD = 'correct-horse-battery-staple';
const FROM = 'Herald <noreply@herald.test>';

const TEMPLATE = {
  subject: 'Your {{ .product }} order {{ .order }}',
  // The lone "." and the ".." line must be dot-stuffed on the wire and arrive as written.
  body: 'Hello {{ .name }},\n\norder {{ .order }} totals {{ .total }}.\n.\n..starts with two dots\n',
};
const PARAMS = { name: 'Ann', product: 'Crème brûlée', order: 'A-1042', total: '12.50 EUR' };

function provider(port: number, extra: Record<string, unknown> = {}) {
  return { type: 'smtp', host: '127.0.0.1', port, username: USER, password: PASSWORD, from: FROM, ...extra };
}

function firstAddress(field: AddressObject | AddressObject[] | undefined) {
  return (Array.isArray(field) ? field[0] : field)?.value[0];
}

interface Delivery {
  id: string;
  recipient: { value: string };
  status: string;
  attempts: number;
  lastError: string | null;
  attemptLog: { attempt: number; outcome: string; error: string | null; details: Record<string, unknown> | null; durationMs: number }[];
}

const TERMINAL = new Set(['sent', 'failed', 'dead']);

/** Polls the deliveries of a notification until none is still queued; returns them by address. */
async function settle(call: (method: string, path: string) => Promise<ApiReply>, id: string): Promise<Map<string, Delivery>> {
  const items = await waitFor(async () => {
    const res = await call('GET', `/api/v1/notifications/${id}/deliveries`);
    const list = res.body.items as Delivery[];
    return list.every((d) => TERMINAL.has(d.status)) ? list : undefined;
  });
  return new Map(items.map((d) => [d.recipient.value, d]));
}

describe('classifySmtpError', () => {
  const rcpt = (response: string) => ({
    code: 'EENVELOPE',
    command: 'RCPT TO',
    responseCode: Number(response.slice(0, 3)),
    response,
    message: `Can't send mail - all recipients were rejected: ${response}`,
  });
  const cases: [string, unknown, Outcome['kind']][] = [
    ['421 throttling', rcpt('421 4.7.0 Too many messages, closing connection'), 'retry'],
    ['450 mailbox busy (greylisting)', rcpt('450 4.2.1 Mailbox busy, try again later'), 'retry'],
    ['451 local error', rcpt('451 4.3.0 Temporary local problem'), 'retry'],
    ['452 insufficient storage', rcpt('452 4.3.1 Insufficient system storage'), 'retry'],
    ['452 4.2.2 mailbox full', rcpt('452 4.2.2 Mailbox full'), 'retry'],
    ['552 5.2.2 mailbox full', rcpt('552 5.2.2 Mailbox full'), 'retry'],
    ['454 temporary auth failure', { code: 'EAUTH', command: 'AUTH PLAIN', responseCode: 454, response: '454 4.7.0 Temporary authentication failure' }, 'retry'],
    ['530 auth required', { code: 'EENVELOPE', command: 'MAIL FROM', responseCode: 530, response: '530 5.7.0 Authentication required' }, 'failed'],
    ['534 mechanism too weak', { code: 'EAUTH', command: 'AUTH LOGIN', responseCode: 534, response: '534 5.7.9 Authentication mechanism is too weak' }, 'failed'],
    ['535 bad credentials', { code: 'EAUTH', command: 'AUTH PLAIN', responseCode: 535, response: '535 5.7.8 Authentication credentials invalid' }, 'failed'],
    ['550 5.1.1 user unknown', rcpt('550 5.1.1 <a@example.com>: Recipient address rejected: User unknown'), 'dead'],
    ['550 5.1.0 bad mailbox', rcpt('550 5.1.0 Address rejected'), 'dead'],
    ['550 5.1.3 bad syntax', rcpt('550 5.1.3 Bad recipient address syntax'), 'dead'],
    ['553 5.1.3 bad syntax', rcpt('553 5.1.3 Bad recipient address syntax'), 'dead'],
    ['550 5.1.2 no such domain', rcpt('550 5.1.2 Host or domain name not found'), 'dead'],
    ['550 5.1.10 null MX', rcpt('550 5.1.10 Recipient address has null MX'), 'dead'],
    ['550 5.2.1 mailbox disabled', rcpt('550 5.2.1 The email account that you tried to reach is disabled'), 'dead'],
    ['multi-line 550 5.1.1', rcpt('550-5.1.1 The email account that you tried to reach does not exist.\n550 5.1.1 Please check the address'), 'dead'],
    ['552 5.3.4 too big', { code: 'EMESSAGE', command: 'DATA', responseCode: 552, response: '552 5.3.4 Message too big for system' }, 'failed'],
    ['550 5.7.1 relay denied', rcpt('550 5.7.1 Relaying denied'), 'failed'],
    ['554 5.7.1 policy', rcpt('554 5.7.1 Message rejected by policy'), 'failed'],
    ['554 5.6.0 transaction failed', { code: 'EMESSAGE', command: 'DATA', responseCode: 554, response: '554 5.6.0 Transaction failed' }, 'failed'],
    ['550 without an enhanced code', rcpt('550 Requested action not taken: mailbox unavailable'), 'failed'],
    ['550 5.1.15 is no dead-address code', rcpt('550 5.1.15 Something else'), 'failed'],
    ['550 5.1.1 on MAIL FROM names the sender', { code: 'EENVELOPE', command: 'MAIL FROM', responseCode: 550, response: '550 5.1.1 Sender unknown' }, 'failed'],
    ['connection refused', { code: 'ESOCKET', command: 'CONN', message: 'connect ECONNREFUSED 127.0.0.1:1' }, 'retry'],
    ['connection closed', { code: 'ECONNECTION', command: 'CONN', message: 'Connection closed unexpectedly' }, 'retry'],
    ['socket timeout', { code: 'ETIMEDOUT', command: 'CONN', message: 'Timeout' }, 'retry'],
    ['DNS failure', { code: 'EDNS', command: 'CONN', message: 'getaddrinfo EAI_AGAIN smtp.example.com' }, 'retry'],
    ['TLS handshake failure', { code: 'ETLS', command: 'CONN', message: 'self-signed certificate' }, 'retry'],
    ['send timeout (abort)', { code: 'EABORT', message: 'Message sending aborted' }, 'retry'],
    ['missing credentials', { code: 'EAUTH', command: 'API', message: 'Missing credentials for "PLAIN"' }, 'failed'],
    ['message over SIZE', { code: 'EMESSAGE', command: 'MAIL FROM', message: 'Message size larger than allowed 1000' }, 'failed'],
    ['invalid recipient', { code: 'EENVELOPE', command: 'API', message: 'Invalid recipient "a\\nb"' }, 'failed'],
  ];
  for (const [name, error, kind] of cases) {
    test(`${name} -> ${kind}`, () => {
      const outcome = classifySmtpError(error);
      assert.equal(outcome.kind, kind);
      const { response } = error as { response?: string };
      if (response) assert.equal(outcome.details?.response, response);
    });
  }
});

describe('smtp provider configuration', () => {
  const deps = {} as ProviderDeps;
  const cases: [Record<string, unknown>, string][] = [
    [{ from: FROM }, 'providers.m.host'],
    [{ host: '127.0.0.1' }, 'providers.m.from'],
    [{ host: '127.0.0.1', from: 'not an address' }, 'providers.m.from'],
    [{ host: '127.0.0.1', from: FROM, secure: true, startTls: true }, 'providers.m.startTls'],
    [{ host: '127.0.0.1', from: FROM, username: USER }, 'providers.m.password'],
    [{ host: '127.0.0.1', from: FROM, password: PASSWORD }, 'providers.m.username'],
    [{ host: '127.0.0.1', from: FROM, port: 0 }, 'providers.m.port'],
    [{ host: '127.0.0.1', from: FROM, maxConnections: 0 }, 'providers.m.maxConnections'],
  ];
  for (const [fields, key] of cases) {
    test(`refuses ${JSON.stringify(fields)} naming ${key}`, () => {
      assert.throws(() => smtpModule.create('m', fields, deps), configErrorNaming(key, PASSWORD));
    });
  }

  test('accepts "Name <address>" and a bare address as from, and validates email targets', async () => {
    for (const from of [FROM, 'noreply@herald.test']) {
      const p = smtpModule.create('m', { host: '127.0.0.1', from }, deps);
      assert.equal(p.validateTarget({ type: 'email', value: 'ann@example.com' }), undefined);
      assert.match(p.validateTarget({ type: 'email', value: 'ann@example' }) ?? '', /email address/);
      assert.match(p.validateTarget({ type: 'email', value: 'ann @example.com' }) ?? '', /email address/);
      await p.close();
    }
  });
});

for (const backend of BACKENDS) {
  describe(`email channel over SMTP (${backend})`, () => {
    let t: TestDb;
    let smtp: FakeSmtp;
    let h: TestHerald;
    before(async () => {
      t = await createTestDb(backend);
      smtp = await startFakeSmtp({ username: USER, password: PASSWORD });
      h = await startTestHerald(t.db, {
        // Far above a loopback send (milliseconds), and short enough for the stalled-server test.
        dispatcher: { sendTimeout: '1s' },
        channels: {
          email: { enabled: true, provider: 'mail' },
          email_locked: { enabled: true, provider: 'mail_locked' },
        },
        providers: {
          mail: provider(smtp.port),
          // The same server with a stale password.
          mail_locked: provider(smtp.port, { password: 'stale-password' }),
        },
      });
      await createTemplates(h, ['email', 'email_locked'].map((channel) => ({ name: `receipt-${channel}`, channel, ...TEMPLATE })));
    });
    after(async () => {
      // Herald first: it closes its pooled SMTP connections, so the server can close at once.
      await h.close();
      await smtp.close();
      await t.drop();
    });

    async function notify(to: string[], channel = 'email'): Promise<string> {
      const res = await h.call('POST', '/api/v1/notifications', {
        channels: { [channel]: { template: `receipt-${channel}`, params: PARAMS } },
        recipients: to.map((value) => ({ type: 'email', value })),
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.notificationId as string;
    }

    test('a message is sent once, authenticated, with From, To, Subject and the rendered body', async () => {
      const id = await notify(['ann@example.com']);
      const d = (await settle(h.call, id)).get('ann@example.com')!;
      assert.equal(d.status, 'sent');
      assert.equal(d.attempts, 1);
      assert.equal(d.lastError, null);
      assert.equal(d.attemptLog.length, 1);
      assert.equal(d.attemptLog[0]!.outcome, 'sent');
      assert.match(String(d.attemptLog[0]!.details?.response), /^250 2\.0\.0 OK queued as /);

      const mails = smtp.received.filter((m) => m.rcptTo.includes('ann@example.com'));
      assert.equal(mails.length, 1);
      const mail = mails[0]!;
      assert.equal(mail.user, USER);
      assert.ok(['PLAIN', 'LOGIN'].includes(mail.authMethod));
      assert.equal(mail.mailFrom, 'noreply@herald.test');
      assert.deepEqual(mail.rcptTo, ['ann@example.com']);
      assert.deepEqual(firstAddress(mail.parsed.from), { address: 'noreply@herald.test', name: 'Herald' });
      assert.equal(firstAddress(mail.parsed.to)?.address, 'ann@example.com');
      assert.equal(mail.parsed.subject, 'Your Crème brûlée order A-1042');
      assert.equal(mail.parsed.text, 'Hello Ann,\n\norder A-1042 totals 12.50 EUR.\n.\n..starts with two dots\n');
      // The server saw the lines as written, so the client stuffed them and the server un-stuffed them.
      assert.ok(mail.raw.includes('\r\n.\r\n..starts with two dots\r\n'), mail.raw.toString());
      assert.equal(mail.parsed.headers.get('x-herald-delivery'), d.id);
      assert.equal(mail.parsed.messageId, `<${d.id}@herald.test>`);
    });

    test('4xx replies and a full mailbox are retried, then the delivery is dead after maxRetry', async () => {
      const cases: [string, RegExp][] = [
        ['busy@example.com', /451 4\.3\.0/],
        ['throttled@example.com', /421 4\.7\.0/],
        ['full@example.com', /552 5\.2\.2/],
      ];
      for (const [address, reply] of cases) {
        const d = (await settle(h.call, await notify([address]))).get(address)!;
        assert.equal(d.status, 'dead', address);
        // maxRetry 2 in the test config: the first attempt and two retries.
        assert.equal(d.attempts, 3, address);
        assert.deepEqual(
          d.attemptLog.map((a) => a.outcome),
          ['retry', 'retry', 'retry'],
          address,
        );
        assert.match(d.lastError ?? '', /^gave up after 3 attempts: /);
        assert.match(d.lastError ?? '', reply);
        assert.ok(smtp.rcptAttempts.filter((a) => a === address).length >= 3, address);
        assert.ok(!smtp.received.some((m) => m.rcptTo.includes(address)), address);
      }
    });

    test('550 5.1.1 marks the address dead after one attempt; the other recipient still gets the mail', async () => {
      const id = await notify(['dead@example.com', 'bo@example.com']);
      const byAddress = await settle(h.call, id);
      const dead = byAddress.get('dead@example.com')!;
      assert.equal(dead.status, 'dead');
      assert.equal(dead.attempts, 1);
      assert.equal(dead.attemptLog[0]!.outcome, 'dead');
      assert.equal(dead.attemptLog[0]!.details?.responseCode, 550);
      assert.equal(dead.attemptLog[0]!.details?.command, 'RCPT TO');
      assert.match(dead.lastError ?? '', /550 5\.1\.1/);
      assert.equal(smtp.rcptAttempts.filter((a) => a === 'dead@example.com').length, 1);
      assert.equal(byAddress.get('bo@example.com')!.status, 'sent');
      const notification = await h.call('GET', `/api/v1/notifications/${id}`);
      assert.equal(notification.body.status, 'partial');
    });

    test('a 5xx policy refusal fails the delivery permanently after one attempt', async () => {
      const id = await notify(['policy@example.com']);
      const d = (await settle(h.call, id)).get('policy@example.com')!;
      assert.equal(d.status, 'failed');
      assert.equal(d.attempts, 1);
      assert.equal(d.attemptLog[0]!.outcome, 'failed');
      assert.match(d.lastError ?? '', /554 5\.7\.1/);
    });

    test('535 bad credentials fail permanently, and the password shows nowhere', async () => {
      const before = smtp.authFailures.length;
      const id = await notify(['cy@example.com'], 'email_locked');
      const d = (await settle(h.call, id)).get('cy@example.com')!;
      assert.equal(d.status, 'failed');
      assert.equal(d.attempts, 1);
      assert.equal(d.attemptLog[0]!.outcome, 'failed');
      assert.equal(d.attemptLog[0]!.details?.code, 'EAUTH');
      assert.match(d.lastError ?? '', /535 5\.7\.8/);
      assert.deepEqual(smtp.authFailures.slice(before), [USER]);
      assert.ok(!smtp.rcptAttempts.includes('cy@example.com'), 'nothing is sent without a session');
      const raw = JSON.stringify((await h.call('GET', `/api/v1/notifications/${id}/deliveries`)).body);
      assert.ok(!raw.includes('stale-password') && !raw.includes(PASSWORD));
    });

    // Last: its retries go on stalling in the background until Herald closes.
    test('a server that stops answering is given up on at dispatcher.sendTimeout, and retried', async () => {
      const address = `${STALL_LOCAL_PART}@example.com`;
      const id = await notify([address]);
      const first = await waitFor(async () => {
        const res = await h.call('GET', `/api/v1/notifications/${id}/deliveries`);
        return (res.body.items as Delivery[])[0]!.attemptLog[0];
      });
      assert.equal(first.outcome, 'retry');
      assert.equal(first.details?.code, 'EABORT');
      assert.ok(first.durationMs >= 900 && first.durationMs < 5_000, `${first.durationMs} ms`);
      assert.ok(smtp.rcptAttempts.includes(address));
    });
  });
}

/**
 * Node reads NODE_EXTRA_CA_CERTS only at start-up, so trusting a certificate made by this test
 * takes a Herald process of its own: the CLI, on a database of its own. PostgreSQL only: a new
 * embedded store on disk takes the child about 11 s to create, a PostgreSQL database well under 1 s.
 */
const NEEDS_POSTGRES = process.env.DATABASE_URL ? false : 'needs PostgreSQL: set DATABASE_URL to run Herald in a child process';

describe('email channel with STARTTLS (herald serve in a child process)', { skip: NEEDS_POSTGRES }, () => {
  let dir: string;
  let t: TestDb;
  let smtp: FakeSmtp;
  let herald: HeraldProcess;
  let url: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'herald-smtp-tls-'));
    const keyFile = join(dir, 'key.pem');
    const certFile = join(dir, 'cert.pem');
    // P-256 rather than RSA: key generation takes milliseconds.
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
    ], { stdio: 'ignore' });
    smtp = await startFakeSmtp({
      username: USER,
      password: PASSWORD,
      tls: { key: readFileSync(keyFile, 'utf8'), cert: readFileSync(certFile, 'utf8') },
    });
    t = await createTestDb('postgres');
    const configFile = join(dir, 'config.yaml');
    writeFileSync(
      configFile,
      stringify(
        testConfig(dir, {
          database: { url: t.url },
          channels: {
            email: { enabled: true, provider: 'mail' },
            email_plain: { enabled: true, provider: 'mail_plain' },
          },
          providers: {
            mail: provider(smtp.port, { startTls: true }),
            // Never upgrades: the server must refuse to take credentials in the clear.
            mail_plain: provider(smtp.port, { startTls: false }),
          },
        }),
      ),
    );
    writeFileSync(join(dir, 'apps.yaml'), stringify({ apps: [APP] }));
    herald = spawnHerald(['serve', '-c', configFile], { env: { NODE_EXTRA_CA_CERTS: certFile } });
    const banner = await herald.ready;
    url = /API:\s+(http:\/\/\S+)\/api\/v1/.exec(banner)![1]!;
    for (const channel of ['email', 'email_plain']) {
      const res = await call('POST', '/api/v1/templates', { name: `receipt-${channel}`, channel, ...TEMPLATE });
      assert.equal(res.status, 201);
    }
  });
  after(async () => {
    await herald?.stop();
    await smtp?.close();
    await t?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  const call = (method: string, path: string, body?: unknown): Promise<ApiReply> => callApi(url, method, path, body);

  async function notify(to: string, channel: string): Promise<Delivery> {
    const res = await call('POST', '/api/v1/notifications', {
      channels: { [channel]: { template: `receipt-${channel}`, params: PARAMS } },
      recipients: [{ type: 'email', value: to }],
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return (await settle(call, res.body.notificationId as string)).get(to)!;
  }

  test('startTls: true upgrades before AUTH and verifies the server certificate', async () => {
    const d = await notify('ann@example.com', 'email');
    assert.equal(d.status, 'sent', d.lastError ?? '');
    const mail = smtp.received.find((m) => m.rcptTo.includes('ann@example.com'));
    assert.ok(mail);
    assert.equal(mail.secure, true);
    assert.equal(mail.user, USER);
    assert.equal(mail.parsed.subject, 'Your Crème brûlée order A-1042');
  });

  test('without that CA, as in this test process, the upgrade fails verification and is retried', async () => {
    const direct = smtpModule.create('direct', provider(smtp.port, { startTls: true }), {} as ProviderDeps);
    try {
      const outcome = await direct.send({
        delivery: {
          id: '00000000-0000-4000-8000-000000000001',
          notificationId: '00000000-0000-4000-8000-000000000002',
          appId: APP.appId,
          channel: 'email',
          recipient: { type: 'email', value: 'cy@example.com' },
          attempt: 1,
          acceptedAt: new Date(),
        },
        content: { subject: 's', body: 'b', msgType: '', templateCode: '', params: {} },
        signal: AbortSignal.timeout(5_000),
      });
      assert.equal(outcome.kind, 'retry');
      assert.match(outcome.error, /self-signed certificate/, JSON.stringify(outcome));
    } finally {
      await direct.close();
    }
    assert.ok(!smtp.rcptAttempts.includes('cy@example.com'));
  });

  test('startTls: false stays in plaintext, and a server that wants TLS first refuses the login', async () => {
    const d = await notify('bo@example.com', 'email_plain');
    assert.equal(d.status, 'failed');
    assert.equal(d.attemptLog[0]!.details?.code, 'EAUTH');
    assert.match(d.lastError ?? '', /STARTTLS/);
    assert.ok(!smtp.received.some((m) => m.rcptTo.includes('bo@example.com')));
  });
});
