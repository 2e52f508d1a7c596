import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, unwatchFile, watchFile, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { ConfigError } from '../channels/channel.js';

export interface AppCredential {
  appId: string;
  appSecret: string;
  name?: string;
  enabled?: boolean;
}

const WATCH_INTERVAL_MS = 1_000;
export const DEV_APP_ID = 'herald-dev';

const digest = (secret: string): Buffer => createHash('sha256').update(secret).digest();

/** Parses a credentials file (YAML or JSON: `apps: [{appId, appSecret, name, enabled}]`). */
export function parseCredentials(text: string, file: string): Map<string, Buffer> {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (error) {
    throw new ConfigError(file, `not valid YAML or JSON: ${(error as Error).message.split('\n')[0]}`);
  }
  const apps = (doc as { apps?: unknown } | null)?.apps;
  if (!Array.isArray(apps)) throw new ConfigError(`${file}: apps`, 'must be a list');
  const secrets = new Map<string, Buffer>();
  apps.forEach((app: Partial<AppCredential>, i) => {
    if (typeof app?.appId !== 'string' || app.appId === '') throw new ConfigError(`${file}: apps[${i}].appId`, 'is required');
    if (typeof app.appSecret !== 'string' || app.appSecret === '') {
      throw new ConfigError(`${file}: apps[${i}].appSecret`, 'is required');
    }
    if (app.enabled === false) return;
    secrets.set(app.appId, digest(app.appSecret));
  });
  return secrets;
}

/**
 * The apps allowed to call the API. Secrets are held only as SHA-256 digests and compared in
 * constant time. The file is re-read when it changes; a bad edit is reported and the last good
 * set stays in force.
 */
export class Credentials {
  private secrets: Map<string, Buffer>;
  private readonly onChange = (): void => void this.reload();

  constructor(
    readonly file: string,
    private readonly onReloadError: (error: Error) => void = () => undefined,
  ) {
    this.secrets = parseCredentials(readFileSync(file, 'utf8'), file);
  }

  verify(appId: string, secret: string): boolean {
    const expected = this.secrets.get(appId);
    // Compare against a digest either way, so an unknown app id takes as long as a wrong secret.
    const actual = digest(secret);
    return timingSafeEqual(expected ?? digest(`${secret}\0`), actual) && expected !== undefined;
  }

  watch(): void {
    watchFile(this.file, { interval: WATCH_INTERVAL_MS }, this.onChange);
  }

  /** Re-reads the file now; returns why it was refused, in which case the previous apps stay. */
  reload(): Error | undefined {
    try {
      this.secrets = parseCredentials(readFileSync(this.file, 'utf8'), this.file);
      return undefined;
    } catch (error) {
      this.onReloadError(error as Error);
      return error as Error;
    }
  }

  close(): void {
    unwatchFile(this.file, this.onChange);
  }
}

/** Writes a credentials file holding one development app with a random secret, unless it exists. */
export function ensureDevCredentials(file: string): AppCredential | undefined {
  if (existsSync(file)) return undefined;
  mkdirSync(dirname(file), { recursive: true });
  const app: AppCredential = {
    appId: DEV_APP_ID,
    appSecret: randomBytes(24).toString('base64url'),
    name: 'Herald development app',
    enabled: true,
  };
  writeFileSync(file, toYaml({ apps: [app] }), { mode: 0o600 });
  return app;
}
