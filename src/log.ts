import pino, { type Logger } from 'pino';

/** Paths that may hold a secret; pino writes [Redacted] in their place. */
const REDACT = [
  'req.headers["x-app-secret"]',
  'req.headers.authorization',
  '*.password',
  '*.appSecret',
  '*.secret',
];

export function makeLogger(level: string): Logger {
  return pino({ level, base: { service: 'herald' }, redact: REDACT });
}
