import type { Content } from '../channels/channel.js';
import type { ChannelSnapshot } from '../engine/accept.js';
import { render } from '../engine/render.js';

const MAX_CACHED = 1_000;

/**
 * Renders a notification's channel content once and shares it between that notification's
 * deliveries (all recipients of one channel get the same content).
 */
export class ContentCache {
  private readonly cache = new Map<string, Content>();

  get(notificationId: string, channel: string, spec: ChannelSnapshot): Content {
    const key = `${notificationId}\0${channel}`;
    const hit = this.cache.get(key);
    if (hit) return hit;
    const params = spec.params ?? {};
    const { subject, body, msgType, templateCode, engine } = spec.content;
    const content: Content = {
      subject: render(subject, engine, params),
      body: render(body, engine, params),
      msgType,
      templateCode,
      params,
    };
    if (this.cache.size >= MAX_CACHED) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(key, content);
    return content;
  }
}
