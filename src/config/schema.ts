/**
 * The configuration file's layout (server, database, dispatcher, auth, defaults, logging, channels,
 * providers) as one JSON Schema. Unknown keys in a known section are refused, so a typo is named
 * rather than ignored. Provider fields are checked by each channel module. Where a value may take
 * several shapes (anyOf), `description` says what is expected; it becomes the error message.
 */
export const DURATION_HINT = 'a duration such as 250ms, 10s, 5m or 1h';

const duration = {
  description: DURATION_HINT,
  anyOf: [{ type: 'string' }, { type: 'number', minimum: 0 }],
};

export const configSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    server: {
      type: 'object',
      additionalProperties: false,
      properties: {
        address: { type: 'string' },
        readTimeout: duration,
        writeTimeout: duration,
        idleTimeout: duration,
        bodyLimit: { type: 'integer', minimum: 1024 },
      },
    },
    database: {
      type: 'object',
      additionalProperties: false,
      properties: {
        url: { type: 'string' },
        host: { type: 'string' },
        port: { type: 'integer', minimum: 1, maximum: 65535 },
        user: { type: 'string' },
        password: { type: 'string' },
        dbname: { type: 'string' },
        sslMode: { enum: ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] },
        maxOpenConns: { type: 'integer', minimum: 2 },
        maxIdleConns: { type: 'integer', minimum: 0 },
        connMaxLifetime: duration,
        dataDir: { type: 'string' },
      },
    },
    dispatcher: {
      type: 'object',
      additionalProperties: false,
      properties: {
        enabled: { type: 'boolean' },
        interval: duration,
        batchSize: { type: 'integer', minimum: 1, maximum: 10_000 },
        leaseTimeout: duration,
        concurrency: { type: 'integer', minimum: 1 },
        sendTimeout: duration,
      },
    },
    auth: {
      type: 'object',
      additionalProperties: false,
      properties: { enabled: { type: 'boolean' }, credentialsFilePath: { type: 'string' } },
    },
    defaults: {
      type: 'object',
      additionalProperties: false,
      properties: {
        maxRetry: { type: 'integer', minimum: 0 },
        retryBackoffSeconds: { type: 'array', items: { type: 'number', minimum: 0 } },
      },
    },
    logging: {
      type: 'object',
      additionalProperties: false,
      properties: { level: { enum: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] } },
    },
    channels: {
      type: 'object',
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['provider'],
        properties: {
          enabled: { type: 'boolean' },
          provider: {
            description: 'a provider name, or a list of them in priority order',
            anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' }, minItems: 1 }],
          },
        },
      },
    },
    providers: {
      type: 'object',
      additionalProperties: { type: 'object', required: ['type'], properties: { type: { type: 'string' } } },
    },
  },
} as const;

/** Sections whose keys may be set from the environment, e.g. DISPATCHER_BATCH_SIZE or DATABASE_URL. */
export const ENV_SECTIONS = ['server', 'database', 'dispatcher', 'auth', 'logging', 'defaults'] as const;
