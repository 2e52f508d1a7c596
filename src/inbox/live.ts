import type { Db } from '../store/db.js';
import { INBOX_NOTIFY_CHANNEL, type InboxMessage, type InboxStore } from './store.js';

type Listener = (message: InboxMessage) => void;

/**
 * Fans new inbox messages out to open streams. Every replica listens on the database channel, so a
 * browser connected to any replica hears of a message stored by any other.
 */
export class InboxLive {
  private readonly listeners = new Map<string, Set<Listener>>();
  private unlisten?: () => Promise<void>;

  constructor(
    private readonly db: Db,
    private readonly store: InboxStore,
  ) {}

  async start(): Promise<void> {
    this.unlisten = await this.db.listen(INBOX_NOTIFY_CHANNEL, (payload) => void this.onNotify(payload));
  }

  private async onNotify(payload: string): Promise<void> {
    const { appId, userId, id } = JSON.parse(payload) as { appId: string; userId: string; id: string };
    const set = this.listeners.get(`${appId}\0${userId}`);
    if (!set?.size) return;
    const message = await this.store.get(appId, id).catch(() => undefined);
    if (message) for (const listener of set) listener(message);
  }

  subscribe(appId: string, userId: string, listener: Listener): () => void {
    const key = `${appId}\0${userId}`;
    const set = this.listeners.get(key) ?? new Set();
    set.add(listener);
    this.listeners.set(key, set);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(key);
    };
  }

  async stop(): Promise<void> {
    await this.unlisten?.();
  }
}
