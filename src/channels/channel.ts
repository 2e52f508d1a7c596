/**
 * The one interface every channel module implements. A module is a provider type (smtp, webhook,
 * inapp, ...): it checks its configuration, says which recipient types it serves, checks a target
 * address, sends one delivery, and classifies what the provider answered.
 */

export interface Recipient {
  type: string;
  value: string;
}

/**
 * The recipient of a group channel's post to the group itself (no one mentioned): used when a
 * notification names a group channel but none of its recipients maps to it.
 */
export const GROUP_RECIPIENT_TYPE = 'group';

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
  /** When the notification was accepted. */
  acceptedAt: Date;
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
  /**
   * Transient: try again later, not sooner than `retryAfterMs` when the provider said so. `scope:
   * 'recipient'` says the provider itself answered and only this address is deferred (a busy
   * mailbox), so the provider's circuit breaker does not count it.
   */
  | { kind: 'retry'; error: string; retryAfterMs?: number; scope?: 'recipient'; details?: Record<string, unknown> }
  /** This message can never succeed as sent (bad payload, credentials, policy). */
  | { kind: 'failed'; error: string; details?: Record<string, unknown> }
  /** The address no longer exists: stop using it. */
  | { kind: 'dead'; error: string; details?: Record<string, unknown> }
  /**
   * Not sendable yet, through no fault of the message (e.g. a key exchange with the recipient is
   * under way): check again after `recheckAfterMs`; does not use up the retry budget.
   */
  | { kind: 'waiting'; reason: string; recheckAfterMs?: number; details?: Record<string, unknown> };

export interface ChannelProvider {
  /** Provider name from the configuration (providers: <name>). */
  readonly name: string;
  readonly type: string;
  /** Recipient types this provider delivers to. */
  readonly recipientTypes: readonly string[];
  /** A group channel: posts to its group, mentioning the recipients that map to it, if any. */
  readonly postsToGroup?: boolean;
  /**
   * The provider's own send rate limit (e.g. 20 a minute per robot), enforced across replicas;
   * deliveries over it wait their turn rather than fail.
   */
  readonly rateLimit?: { limit: number; intervalMs: number };
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
