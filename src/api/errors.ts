/**
 * The one catalog of API errors: a stable code, its HTTP status, and a message that names the
 * field when one is at fault. Rendered as `{error, message, field?}` by the API's error handler.
 */
export const ERROR_STATUS = {
  validation_failed: 400,
  unauthorized: 401,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  unavailable: 503,
  internal: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export class HeraldError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'HeraldError';
    this.status = ERROR_STATUS[code];
  }

  toJSON(): { error: ErrorCode; message: string; field?: string } {
    return { error: this.code, message: this.message, ...(this.field ? { field: this.field } : {}) };
  }
}

export const invalid = (field: string, problem: string): HeraldError =>
  new HeraldError('validation_failed', `${field} ${problem}`, field);

export const notFound = (what: string): HeraldError => new HeraldError('not_found', `${what} not found`);
