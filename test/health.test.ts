import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { createTestDb } from './helpers/db.js';
import { startTestHerald } from './helpers/herald.js';

const skip = !process.env.DATABASE_URL && 'DATABASE_URL is not set';

test('while the database refuses connections, /health is 503 and the API answers 503 unavailable (postgres)', { skip }, async () => {
  const t = await createTestDb('postgres');
  const h = await startTestHerald(t.db);
  const admin = new pg.Client({ connectionString: process.env.DATABASE_URL });
  await admin.connect();
  const name = new URL(t.url!).pathname.slice(1);
  try {
    assert.equal((await fetch(`${h.url}/health`)).status, 200);
    // Cut every connection to the test database and refuse new ones, as an outage would.
    await admin.query(`alter database ${name} with allow_connections false`);
    await admin.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1', [name]);
    const res = await fetch(`${h.url}/health`);
    assert.equal(res.status, 503);
    assert.equal(((await res.json()) as { status: string }).status, 'unhealthy');
    const write = await h.call('POST', '/api/v1/templates', { name: 'x', channel: 'inapp', body: 'x' });
    assert.equal(write.status, 503);
    assert.equal(write.body.error, 'unavailable');
    await admin.query(`alter database ${name} with allow_connections true`);
    assert.equal((await fetch(`${h.url}/health`)).status, 200, 'healthy again once the database is back');
  } finally {
    await admin.query(`alter database ${name} with allow_connections true`);
    await admin.end();
    await h.close();
    await t.drop();
  }
});
