import { FormData, interceptors, type Agent, type Dispatcher } from 'undici';
import { answerDetails, classifyFeishuAnswer, type Failure, type FeishuApi } from './feishu-api.js';
import { imageUrls, safeUrl, visitImageUrls } from './feishu-content.js';
import { exchange, makeAgent, parseRetryAfter } from './http.js';

// Feishu refuses images over 10 MB, and empty ones.
const MAX_IMAGE_BYTES = 10 * 1024 * 1024;
// An uploaded image_key stays valid. Every recipient of a notification is its own delivery with
// the same content, so one upload per URL per 10 minutes serves them all; a chart re-rendered at
// the same URL is picked up after that.
const KEY_TTL_MS = 10 * 60_000;
const MAX_KEYS = 1_000;
// Image hosts commonly redirect to a CDN.
const MAX_REDIRECTS = 3;
const UPLOAD_PATH = '/open-apis/im/v1/images';

/**
 * Feishu shows only images uploaded to it, never a linked URL. This downloads each image URL a
 * message names where an image key belongs, uploads it, and writes the upload's key in its place.
 */
export class FeishuImages {
  private readonly keys = new Map<string, { key: Promise<string | Failure>; until: number }>();
  private readonly agent: Agent;
  private readonly downloader: Dispatcher;

  constructor(
    private readonly api: FeishuApi,
    timeoutMs: number,
  ) {
    this.agent = makeAgent(timeoutMs);
    this.downloader = this.agent.compose(interceptors.redirect({ maxRedirections: MAX_REDIRECTS }));
  }

  /** Replaces the image URLs in `content` (see visitImageUrls) by image keys, or says why not. */
  async resolve(content: unknown, signal: AbortSignal): Promise<Failure | undefined> {
    const urls = imageUrls(content);
    const results = await Promise.all(urls.map((url) => this.keyFor(url, signal)));
    const failure = results.find((r): r is Failure => typeof r !== 'string');
    if (failure) return failure;
    const keys = new Map(urls.map((url, i) => [url, results[i] as string]));
    visitImageUrls(content, (url) => keys.get(url));
    return undefined;
  }

  close(): Promise<void> {
    return this.agent.close();
  }

  /** The key of `url`'s upload: remembered, shared with concurrent sends, or uploaded now. */
  private keyFor(url: string, signal: AbortSignal): Promise<string | Failure> {
    const now = Date.now();
    const hit = this.keys.get(url);
    if (hit && hit.until > now) return hit.key;
    const key: Promise<string | Failure> = this.upload(url, signal).then((result) => {
      // A failure is not remembered: the next send tries again.
      if (typeof result !== 'string' && this.keys.get(url)?.key === key) this.keys.delete(url);
      return result;
    });
    // Map order is insertion order: re-inserting keeps the oldest entry first for eviction.
    this.keys.delete(url);
    this.keys.set(url, { key, until: now + KEY_TTL_MS });
    if (this.keys.size > MAX_KEYS) this.keys.delete(this.keys.keys().next().value!);
    return key;
  }

  private async upload(url: string, signal: AbortSignal): Promise<string | Failure> {
    const image = await this.download(url, signal);
    if (!(image instanceof Blob)) return image;
    const form = new FormData();
    form.append('image_type', 'message');
    form.append('image', image, 'image');
    const answer = await this.api.call('POST', UPLOAD_PATH, form, signal);
    if ('kind' in answer) return answer;
    const problem = classifyFeishuAnswer(answer);
    if (problem) return { ...problem, error: `image upload of ${safeUrl(url)}: ${problem.error}` };
    const key = answer.data.image_key;
    if (typeof key !== 'string') return { kind: 'failed', error: 'image upload answered without an image_key', details: answerDetails(answer) };
    return key;
  }

  private async download(url: string, signal: AbortSignal): Promise<Blob | Failure> {
    const where = `image ${safeUrl(url)}`;
    const res = await exchange(this.downloader, url, { method: 'GET', headers: { accept: 'image/*' }, signal }, MAX_IMAGE_BYTES);
    // The image host failed, not Feishu: `scope: 'recipient'` keeps Feishu's circuit breaker out of it.
    if ('kind' in res) return { ...res, error: `${where}: ${res.error}`, scope: 'recipient' };
    const details = { status: res.status };
    if (res.status === 429 || res.status >= 500) {
      const retryAfterMs = parseRetryAfter(res.headers['retry-after']);
      return { kind: 'retry', error: `${where}: HTTP ${res.status}`, retryAfterMs, scope: 'recipient', details };
    }
    if (res.status < 200 || res.status >= 300) return { kind: 'failed', error: `${where}: HTTP ${res.status}`, details };
    if (res.body.length === 0) return { kind: 'failed', error: `${where} is empty`, details };
    if (res.body.length > MAX_IMAGE_BYTES) return { kind: 'failed', error: `${where} is over Feishu's 10 MB limit`, details };
    const type = res.headers['content-type'];
    return new Blob([res.body], { type: typeof type === 'string' ? type : '' });
  }
}
