import type { Db } from './db.js';
import init from './migrations/000001-init.js';

/** The one migration chain, in order. A migration is never edited once released; add a new one. */
const MIGRATIONS: readonly { version: number; name: string; sql: string }[] = [
  { version: 1, name: 'init', sql: init },
];

// Any fixed key works as long as every replica uses the same one: 'herald' in ASCII.
export const MIGRATION_LOCK_KEY = 0x68657261;

/**
 * Applies pending migrations in one transaction, each version row written before its statements,
 * under an advisory lock so replicas starting together migrate once and a failure applies nothing.
 */
export async function migrate(db: Db): Promise<number[]> {
  return db.transaction(async (tx) => {
    await tx.query('select pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await tx.query(`create table if not exists herald_migrations (
      version integer primary key, name text not null, applied_at timestamptz not null default now())`);
    const done = new Set(
      (await tx.query<{ version: number }>('select version from herald_migrations')).map((r) => r.version),
    );
    const applied: number[] = [];
    for (const m of MIGRATIONS) {
      if (done.has(m.version)) continue;
      await tx.query('insert into herald_migrations (version, name) values ($1, $2)', [m.version, m.name]);
      for (const statement of splitStatements(m.sql)) await tx.query(statement);
      applied.push(m.version);
    }
    return applied;
  });
}

/**
 * Splits a migration into statements (a parameterised query takes one at a time): comments are
 * dropped first, then it splits at each `;` that ends a line. Migrations keep `;` out of literals.
 */
function splitStatements(sql: string): string[] {
  return sql
    .replace(/--.*$/gm, '')
    .split(/;\s*$/m)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}
