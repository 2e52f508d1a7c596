import type { ChannelModule, ChannelProvider, ProviderDeps } from './channel.js';
import { ConfigError } from './channel.js';
import { inappModule } from './inapp.js';
import { smtpModule } from './smtp.js';
import { webhookModule } from './webhook.js';

/** Every provider type Herald knows. Adding a channel is one module and one line here. */
const MODULES: ReadonlyMap<string, ChannelModule> = new Map(
  [inappModule, smtpModule, webhookModule].map((m) => [m.type, m]),
);

export interface ChannelConfig {
  enabled: boolean;
  provider: string;
}

export type ProviderConfig = { type: string } & Record<string, unknown>;

/** The configured channels, each bound to its provider. Replaced whole on a reload. */
export class ChannelSet {
  private constructor(
    private readonly channels: ReadonlyMap<string, ChannelProvider>,
    private readonly providers: readonly ChannelProvider[],
  ) {}

  /**
   * Builds every provider and binds enabled channels to them. Throws a ConfigError naming the key
   * on the first problem, after closing whatever it had built.
   */
  static build(
    channels: Readonly<Record<string, ChannelConfig>>,
    providers: Readonly<Record<string, ProviderConfig>>,
    deps: ProviderDeps,
  ): ChannelSet {
    const built = new Map<string, ChannelProvider>();
    try {
      for (const [name, cfg] of Object.entries(providers)) {
        const module = MODULES.get(cfg.type);
        if (!module) {
          throw new ConfigError(`providers.${name}.type`, `unknown provider type "${cfg.type}" (known: ${[...MODULES.keys()].join(', ')})`);
        }
        const { type: _type, ...fields } = cfg;
        built.set(name, module.create(name, fields, deps));
      }
      const bound = new Map<string, ChannelProvider>();
      for (const [channel, cfg] of Object.entries(channels)) {
        if (!cfg.enabled) continue;
        const provider = built.get(cfg.provider);
        if (!provider) throw new ConfigError(`channels.${channel}.provider`, `no provider named "${cfg.provider}"`);
        bound.set(channel, provider);
      }
      return new ChannelSet(bound, [...built.values()]);
    } catch (error) {
      for (const p of built.values()) void p.close();
      throw error;
    }
  }

  get(channel: string): ChannelProvider | undefined {
    return this.channels.get(channel);
  }

  names(): string[] {
    return [...this.channels.keys()];
  }

  async close(): Promise<void> {
    await Promise.all(this.providers.map((p) => p.close()));
  }
}
