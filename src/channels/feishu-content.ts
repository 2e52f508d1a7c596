import type { Content, Recipient } from './channel.js';

/**
 * Feishu message content shared by the webhook bot and the app bot: reading a rendered template as
 * text, post or card content, checking Feishu ids, and finding image URLs that stand where an image
 * key belongs.
 */

export const FEISHU_MSG_TYPES = ['text', 'post', 'interactive'] as const;
export type FeishuMsgType = (typeof FEISHU_MSG_TYPES)[number];

/** A post's text per locale (`zh_cn`, `en_us`, `ja_jp`): a title and lines of elements. */
export type PostLocales = Record<string, { title?: string; content: unknown[][] }>;

export type FeishuContent =
  | { msgType: 'text'; text: string }
  | { msgType: 'post'; post: PostLocales }
  | { msgType: 'interactive'; card: Record<string, unknown> };

const EMAIL = /^[^\s@<>"]+@[^\s@<>"]+\.[^\s@<>"]+$/;
// An id is written inside <at user_id="..."> and card markdown: quotes, angle brackets or spaces
// would break out of the tag. Feishu ids are at most 64 characters; 128 leaves room for user_ids.
const FEISHU_ID = /^[^\s"'<>]{1,128}$/;

/** Checks a `feishu_user_id` or `email` recipient; `idPrefix` is e.g. `ou_` when only open_ids work. */
export function validateFeishuRecipient(recipient: Recipient, idPrefix = ''): string | undefined {
  if (recipient.type === 'email') return EMAIL.test(recipient.value) ? undefined : 'must be an email address';
  if (!FEISHU_ID.test(recipient.value)) return 'must be a Feishu user id without spaces, quotes or angle brackets';
  if (!recipient.value.startsWith(idPrefix)) return `must be a Feishu id starting with ${idPrefix}`;
  return undefined;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Reads the rendered template as Feishu content, or returns why it cannot be sent. The template's
 * msgType wins over the provider's. A post body is the locale map `{"zh_cn":{"title":..,"content":
 * [[..]]}}` (the webhook's outer `{"post": ..}` is accepted too, so one template serves both bots);
 * an interactive body is the card JSON.
 */
export function toFeishuContent(content: Content, providerMsgType: FeishuMsgType): FeishuContent | string {
  const msgType = content.msgType || providerMsgType;
  if (msgType === 'text') return { msgType, text: content.body };
  if (msgType !== 'post' && msgType !== 'interactive') {
    return `msgType "${msgType}" is not supported (use ${FEISHU_MSG_TYPES.join(', ')})`;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(content.body);
  } catch (error) {
    return `template body for msgType ${msgType} is not valid JSON: ${(error as Error).message}`;
  }
  if (!isObject(parsed)) return `template body for msgType ${msgType} must be a JSON object`;
  if (msgType === 'interactive') return { msgType, card: parsed };
  const post = isObject(parsed.post) ? parsed.post : parsed;
  const locales = Object.entries(post);
  if (locales.length === 0) return 'template body for msgType post names no locale (e.g. "zh_cn")';
  for (const [locale, value] of locales) {
    if (!isObject(value) || !Array.isArray(value.content) || !value.content.every(Array.isArray)) {
      return `template body for msgType post: ${locale}.content must be an array of lines, each an array of elements`;
    }
  }
  return { msgType, post: post as PostLocales };
}

// Post `img` elements carry `image_key`; card image components carry `img_key`.
const IMAGE_KEY_FIELDS = new Set(['image_key', 'img_key']);
const IMAGE_URL = /^https?:\/\//i;

/**
 * Visits every http(s) URL written where an image key belongs, anywhere in `value`; `replace`
 * returns the key to write in its place, or undefined to leave it. Feishu shows only uploaded
 * images, so such a URL must be replaced by its upload's key before sending.
 */
export function visitImageUrls(value: unknown, replace: (url: string) => string | undefined): void {
  if (Array.isArray(value)) {
    for (const item of value) visitImageUrls(item, replace);
  } else if (isObject(value)) {
    for (const [field, item] of Object.entries(value)) {
      if (IMAGE_KEY_FIELDS.has(field) && typeof item === 'string' && IMAGE_URL.test(item)) {
        const key = replace(item);
        if (key !== undefined) value[field] = key;
      } else {
        visitImageUrls(item, replace);
      }
    }
  }
}

/** The image URLs in `value` (see visitImageUrls), each once. */
export function imageUrls(value: unknown): string[] {
  const found = new Set<string>();
  visitImageUrls(value, (url) => {
    found.add(url);
    return undefined;
  });
  return [...found];
}

/** A URL fit for an error message: no query or fragment, which may carry a signature. */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return '(invalid URL)';
  }
}
