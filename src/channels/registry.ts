import type { ChannelModule, ChannelProvider, ProviderDeps } from './channel.js';
import { apnsModule, apnsSandboxModule } from './apns.js';
import { ConfigError } from './channel.js';
import { dingtalkModule } from './dingtalk.js';
import { discordModule } from './discord.js';
import { fcmModule } from './fcm.js';
import { feishuAppModule } from './feishu-app.js';
import { feishuWebhookModule } from './feishu-webhook.js';
import { inappModule } from './inapp.js';
import { slackModule } from './slack.js';
import { smsHttpModule } from './sms-http.js';
import { smtpModule } from './smtp.js';
import { sphinxModule } from './sphinx.js';
import { telegramModule } from './telegram.js';
import { twilioModule } from './twilio.js';
import { wecomModule } from './wecom.js';
import { webhookModule } from './webhook.js';
import { webpushModule } from './webpush.js';

/** Every provider type Herald knows. Adding a channel is one module and one line here. */
const MODULES: ReadonlyMap<string, ChannelModule> = new Map(
  [
    inappModule,
    smtpModule,
    webhookModule,
    apnsModule,
    apnsSandboxModule,
    fcmModule,
    dingtalkModule,
    wecomModule,
    slackModule,
    discordModule,
    feishuWebhookModule,
    feishuAppModule,
    webpushModule,
    telegramModule,
    twilioModule,
    smsHttpModule,
    sphinxModule,
  ].map((m) => [m.type, m]),
);

/** The provider types a configuration may name. */
export const PROVIDER_TYPES: readonly string[] = [...MODULES.keys()];

export interface ChannelConfig {
  enabled: boolean;
  /** One provider, or several in priority order (failover). */
  provider: string | readonly string[];
}

export type ProviderConfig = { type: string } & Record<string, unknown>;

/** The configured channels, each bound to its providers. Replaced whole on a reload. */
export class ChannelSet {
  private constructor(
    private readonly channels: ReadonlyMap<string, readonly ChannelProvider[]>,
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
      const bound = new Map<string, ChannelProvider[]>();
      for (const [channel, cfg] of Object.entries(channels)) {
        if (!cfg.enabled) continue;
        const names = typeof cfg.provider === 'string' ? [cfg.provider] : cfg.provider;
        if (names.length === 0) throw new ConfigError(`channels.${channel}.provider`, 'names no provider');
        bound.set(
          channel,
          names.map((name) => {
            const provider = built.get(name);
            if (!provider) throw new ConfigError(`channels.${channel}.provider`, `no provider named "${name}"`);
            return provider;
          }),
        );
      }
      return new ChannelSet(bound, [...built.values()]);
    } catch (error) {
      for (const p of built.values()) void p.close();
      throw error;
    }
  }

  /** The channel's first provider: the one whose recipient types and address rules apply. */
  get(channel: string): ChannelProvider | undefined {
    return this.channels.get(channel)?.[0];
  }

  /** The channel's providers in priority order. */
  providersOf(channel: string): readonly ChannelProvider[] {
    return this.channels.get(channel) ?? [];
  }

  names(): string[] {
    return [...this.channels.keys()];
  }

  async close(): Promise<void> {
    await Promise.all(this.providers.map((p) => p.close()));
  }
}
