import { readFileSync } from 'node:fs';
import { ConfigError } from './channel.js';

/** Typed readers for `providers.<name>` fields; each error names the full key. */
export class Fields {
  constructor(
    private readonly prefix: string,
    private readonly raw: Record<string, unknown>,
  ) {}

  private key(name: string): string {
    return `${this.prefix}.${name}`;
  }

  string(name: string): string {
    const value = this.optionalString(name);
    if (value === undefined || value === '') throw new ConfigError(this.key(name), 'is required');
    return value;
  }

  /**
   * A required value given either inline (when `isInline` says so: PEM text, JSON) or as the path
   * of a file holding it. The error never echoes the value, which may be a key.
   */
  textOrFile(name: string, isInline: (value: string) => boolean, what: string): string {
    const value = this.string(name);
    if (isInline(value)) return value;
    try {
      return readFileSync(value, 'utf8');
    } catch {
      throw new ConfigError(this.key(name), `is neither ${what} nor a readable file`);
    }
  }

  optionalString(name: string): string | undefined {
    const value = this.raw[name];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'string') throw new ConfigError(this.key(name), 'must be a string');
    return value;
  }

  optionalNumber(name: string, min = -Infinity): number | undefined {
    const value = this.raw[name];
    if (value === undefined || value === null) return undefined;
    const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
    if (typeof n !== 'number' || !Number.isFinite(n) || n < min) {
      throw new ConfigError(this.key(name), `must be a number${min > -Infinity ? ` ≥ ${min}` : ''}`);
    }
    return n;
  }

  optionalBoolean(name: string): boolean | undefined {
    const value = this.raw[name];
    if (value === undefined || value === null) return undefined;
    if (typeof value === 'boolean') return value;
    if (value === 'true' || value === 'false') return value === 'true';
    throw new ConfigError(this.key(name), 'must be true or false');
  }

  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const value = this.optionalString(name) ?? fallback;
    if (!allowed.includes(value as T)) {
      throw new ConfigError(this.key(name), `must be one of ${allowed.join(', ')}`);
    }
    return value as T;
  }
}
