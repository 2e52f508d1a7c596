import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ERROR_STATUS } from '../src/api/errors.js';
import { PROVIDER_TYPES } from '../src/channels/registry.js';

// Tests run from dist/ or another build folder; the docs sit at the repository root.
const root = new URL('../../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');

test('every provider type has a setup page with its answers → outcomes table, linked from docs/outcomes.md', () => {
  const pages = readdirSync(new URL('docs/channels/', root)).map((f) => ({ file: f, text: read(`docs/channels/${f}`) }));
  const outcomes = read('docs/outcomes.md');
  for (const type of PROVIDER_TYPES) {
    const page = pages.find((p) => new RegExp(`\\(\`type: ${type}\`|\` / \`${type}\`\\)`).test(p.text.split('\n')[0]!));
    assert.ok(page, `docs/channels has no page for type ${type}`);
    assert.ok(type === 'inapp' || /^## Answers → outcomes$/m.test(page.text), `${page.file} has no outcomes table`);
    assert.ok(outcomes.includes(`(channels/${page.file}`), `docs/outcomes.md does not link ${page.file}`);
  }
});

test('the README names every API error code', () => {
  const readme = read('README.md');
  for (const code of Object.keys(ERROR_STATUS)) assert.ok(readme.includes(`\`${code}\``), `README.md does not mention ${code}`);
});
