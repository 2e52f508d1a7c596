#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { ConfigError } from '../channels/channel.js';
import { loadConfig } from '../config/load.js';
import { makeLogger } from '../log.js';
import { startHerald, type Role } from '../service.js';
import { openDb } from '../store/db.js';
import { migrate } from '../store/migrate.js';
import { handleSignals } from './shutdown.js';

const USAGE = `Usage: herald <command> [options]

Commands:
  serve      run the API and the dispatcher
  migrate    apply database migrations and exit

Options:
  -c, --config <file>   configuration file (YAML; every key is in config.example.yaml)
  --role <role>         all (default), api (HTTP only) or worker (dispatcher only);
                        also HERALD_ROLE
  -h, --help            show this help

Environment variables override the file: SECTION_KEY=value for the server, database,
dispatcher, auth, defaults and logging sections, e.g. DATABASE_URL, DISPATCHER_BATCH_SIZE.
With no file and no DATABASE_URL, Herald keeps its data in ./data.
`;

/** The parsed command line, or undefined after saying why it is not one. */
function readArgs() {
  try {
    return parseArgs({
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        role: { type: 'string', default: process.env.HERALD_ROLE ?? 'all' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    // parseArgs refuses unknown options and missing values with a one-line message.
    process.stderr.write(`herald: ${(error as Error).message}\n\n${USAGE}`);
    return undefined;
  }
}

async function main(): Promise<number> {
  const args = readArgs();
  if (!args) return 2;
  const { values, positionals } = args;
  const command = positionals[0];
  if (values.help || !command) {
    process.stdout.write(USAGE);
    return command || values.help ? 0 : 2;
  }
  const role = values.role as Role;
  if (!['all', 'api', 'worker'].includes(role)) throw new ConfigError('--role', 'must be all, api or worker');
  const config = loadConfig({ file: values.config });

  if (command === 'migrate') {
    const db = await openDb({ url: config.database.url, dataDir: config.database.dataDir });
    const applied = await migrate(db);
    await db.close();
    process.stdout.write(applied.length ? `applied migrations ${applied.join(', ')}\n` : 'database is up to date\n');
    return 0;
  }
  if (command !== 'serve') {
    process.stderr.write(`unknown command "${command}"\n\n${USAGE}`);
    return 2;
  }

  const log = makeLogger(config.logging.level);
  const herald = await startHerald({ config, configFile: values.config, role, logger: log });
  handleSignals(herald, log);
  const where = config.database.url ? 'PostgreSQL' : `embedded PGlite in ${config.database.dataDir}`;
  const lines = [`Herald is running (${role}) on ${where}`];
  if (herald.url) lines.push(`  API:          ${herald.url}/api/v1   health: ${herald.url}/health`);
  if (herald.devCredential) {
    lines.push(
      `  Created a development app credential in ${herald.credentialsFile}:`,
      `    X-App-Id: ${herald.devCredential.appId}`,
      `    X-App-Secret: ${herald.devCredential.appSecret}`,
    );
  } else if (herald.credentialsFile) {
    lines.push(`  App credentials: ${herald.credentialsFile}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  return -1;
}

main().then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (error: unknown) => {
    if (error instanceof ConfigError) process.stderr.write(`herald: configuration error: ${error.message}\n`);
    else process.stderr.write(`herald: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
