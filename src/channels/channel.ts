/**
 * The one interface every channel module implements. A module is a provider type (smtp, webhook,
 * inapp, ...): it checks its configuration, says which recipient types it serves, checks a target
 * address, sends one delivery, and classifies what the provider answered.
 */

export interface Recipient {
  type: string;
  value: string;
}

/** What the rendered template gives a channel to send. */
export interface Content {
  subject: string;
  body: string;
  msgType: string;
  templateCode: string;
  params: Record<string, unknown>;
}

export interface DeliveryRef {
  id: string;
  notificationId: string;
  appId: string;
  channel: string;
  recipient: Recipient;
  /** 1 for the first attempt. */
  attempt: number;
}

export interface SendRequest {
  delivery: DeliveryRef;
  content: Content;
  /** Aborted when the send timeout passes. */
  signal: AbortSignal;
}

/** What a provider's answer means for the delivery. */
export type Outcome =
  | { kind: 'sent'; details?: Record<string, unknown> }
  /** Transient: try again later, not sooner than `retryAfterMs` when the provider said so. */
  | { kind: 'retry'; error: string; retryAfterMs?: number; details?: Record<string, unknown> }
  /** This message can never succeed as sent (bad payload, credentials, policy). */
  | { kind: 'failed'; error: string; details?: Record<string, unknown> }
  /** The address no longer exists: stop using it. */
  | { kind: 'dead'; error: string; details?: Record<string, unknown> };

export interface ChannelProvider {
  /** Provider name from the configuration (providers: <name>). */
  readonly name: string;
  readonly type: string;
  /** Recipient types this provider delivers to. */
  readonly recipientTypes: readonly string[];
  /** Returns why the address is unusable, or undefined when it is fine. */
  validateTarget(recipient: Recipient): string | undefined;
  send(request: SendRequest): Promise<Outcome>;
  /** Releases connections; called when a reload replaces the provider or at shutdown. */
  close(): Promise<void>;
}

/** Services a provider may use besides the network. */
export interface ProviderDeps {
  inbox: import('../inbox/store.js').InboxStore;
}

export interface ChannelModule {
  readonly type: string;
  /**
   * Validates the raw `providers.<name>` fields and builds the provider. Throws a ConfigError
   * naming the field on bad input; never includes a secret's value in the message.
   */
  create(name: string, fields: Record<string, unknown>, deps: ProviderDeps): ChannelProvider;
}

export class ConfigError extends Error {
  constructor(
    readonly key: string,
    problem: string,
  ) {
    super(`${key}: ${problem}`);
    this.name = 'ConfigError';
  }
}
