import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import type { AttemptView, DeliveryView } from '../../src/engine/deliveries.js';
import { startHerald, type Herald, type Role } from '../../src/service.js';
import type { Db } from '../../src/store/db.js';

export const APP = { appId: 'test-app', appSecret: 'test-secret-0123456789' };
export const OTHER_APP = { appId: 'other-app', appSecret: 'other-secret-0123456789' };

export interface TestHerald {
  herald: Herald;
  url: string;
  dir: string;
  configFile: string;
  /** Rewrites the config file (hot reload picks it up; call herald.reload() to apply at once). */
  writeConfig(config: Record<string, unknown>): void;
  call(method: string, path: string, body?: unknown, app?: { appId: string; appSecret: string }): Promise<ApiReply>;
  close(): Promise<void>;
}

export interface ApiReply {
  status: number;
  body: any;
  headers: Headers;
}

/** Builds the YAML a test runs Herald with: loopback on a free port, fast dispatcher, test apps. */
export function testConfig(dir: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const { dispatcher, defaults, ...rest } = extra as { dispatcher?: object; defaults?: object };
  return {
    server: { address: '127.0.0.1:0' },
    database: { dataDir: join(dir, 'data') },
    auth: { enabled: true, credentialsFilePath: join(dir, 'apps.yaml') },
    logging: { level: 'silent' },
    dispatcher: { interval: '50ms', ...dispatcher },
    defaults: { maxRetry: 2, retryBackoffSeconds: [0.05, 0.05], ...defaults },
    ...rest,
  };
}

/** Starts Herald in this process on `db` with a config file in a fresh temp folder. */
export async function startTestHerald(
  db: Db,
  extra: Record<string, unknown> = {},
  role: Role = 'all',
): Promise<TestHerald> {
  const dir = mkdtempSync(join(tmpdir(), 'herald-test-'));
  const configFile = join(dir, 'config.yaml');
  const writeConfig = (config: Record<string, unknown>) => writeFileSync(configFile, stringify(testConfig(dir, config)));
  writeConfig(extra);
  writeFileSync(join(dir, 'apps.yaml'), stringify({ apps: [APP, OTHER_APP] }));
  const herald = await startHerald({ config: loadConfig({ file: configFile, env: {} }), configFile, role, db });
  const url = herald.url ?? '';
  return {
    herald,
    url,
    dir,
    configFile,
    writeConfig,
    call: (method, path, body, app) => callApi(url, method, path, body, app),
    async close() {
      await herald.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Calls Herald's API at `url` as `app` (the test app by default); the body is parsed when it is JSON. */
export async function callApi(
  url: string,
  method: string,
  path: string,
  body?: unknown,
  app: { appId: string; appSecret: string } = APP,
): Promise<ApiReply> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: {
      'x-app-id': app.appId,
      'x-app-secret': app.appSecret,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

/** Polls `check` until it returns a value other than undefined/false, or fails after `timeoutMs`. */
export async function waitFor<T>(check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value as T;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A delivery as GET /api/v1/notifications/:id/deliveries lists it; `details` is each provider's own shape. */
export type DeliveryItem = DeliveryView & { attemptLog: (AttemptView & { details: any })[] };

/** One channel per provider, named after it: `{ ding: { provider: 'ding' }, … }`. */
export function channelPerProvider(providers: Record<string, unknown>): Record<string, { provider: string }> {
  return Object.fromEntries(Object.keys(providers).map((name) => [name, { provider: name }]));
}

/** A notification to `channel` with its template of that kind (templates named `<channel>.<kind>`) about `host`. */
export function hostAlert(channel: string, recipients: object[], kind = 'alert', host = 'db-1') {
  return { channels: { [channel]: { template: `${channel}.${kind}`, params: { host } } }, recipients };
}

const FINAL = new Set(['sent', 'failed', 'dead']);
const allFinal = (items: DeliveryItem[]): boolean => items.every((d) => FINAL.has(d.status));

/** Creates templates through the API. */
export async function createTemplates(h: TestHerald, templates: Record<string, unknown>[]): Promise<void> {
  for (const t of templates) {
    const res = await h.call('POST', '/api/v1/templates', t);
    assert.equal(res.status, 201, JSON.stringify(res.body));
  }
}

/** POSTs a notification request, asserting it is accepted; returns the notification id. */
export async function postNotification(h: TestHerald, request: object): Promise<string> {
  const res = await h.call('POST', '/api/v1/notifications', request);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.notificationId;
}

/** Polls notification `id`'s deliveries until `ready` holds for them (by default: none left to try). */
export function settledDeliveries(h: TestHerald, id: string, ready = allFinal, timeoutMs?: number): Promise<DeliveryItem[]> {
  return waitFor(async () => {
    const items = (await h.call('GET', `/api/v1/notifications/${id}/deliveries`)).body.items as DeliveryItem[];
    return ready(items) ? items : undefined;
  }, timeoutMs);
}

/** POSTs a notification and returns its deliveries once `ready` holds for them (by default: none left to try). */
export async function sendAndSettle(h: TestHerald, request: object, ready = allFinal): Promise<DeliveryItem[]> {
  return settledDeliveries(h, await postNotification(h, request), ready);
}
