import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
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
