import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compile, detectEngine, goToLiquid, render, TemplateSyntaxError } from '../src/engine/render.js';

describe('render', () => {
  test('Go-style templates render fields, conditions and ranges', () => {
    const text = '[{{ .severity }}] {{ .incident }}{{ if .owner }} owner {{ .owner.name }}{{ else }} unowned{{ end }}';
    assert.equal(render(text, 'go', { severity: 'P0', incident: 'db down', owner: { name: 'Ann' } }), '[P0] db down owner Ann');
    assert.equal(render(text, 'go', { severity: 'P1', incident: 'slow' }), '[P1] slow unowned');
    const list = '{{ range .items }}<{{ .name }}>{{ end }}|{{ range .tags }}{{ . }},{{ end }}';
    assert.equal(render(list, 'go', { items: [{ name: 'a' }, { name: 'b' }], tags: ['x', 'y'] }), '<a><b>|x,y,');
    assert.equal(render(list, 'go', {}), '|', 'ranging over an absent value runs no iteration');
    assert.equal(render('{{ if eq .s "P0" }}page{{ else if ne .s "P1" }}mail{{ end }}', 'go', { s: 'P0' }), 'page');
    assert.equal(render('{{ if not .quiet }}loud{{ end }}{{/* note */}}', 'go', {}), 'loud');
    assert.equal(render('{{ range .xs }}{{ $.prefix }}{{ . }} {{ end }}', 'go', { xs: [1, 2], prefix: '#' }), '#1 #2 ');
  });

  test('printing a missing variable fails instead of printing nothing', () => {
    assert.throws(() => render('Hi {{ .name }}', 'go', {}), /name/);
    assert.throws(() => render('Hi {{ name }}', 'liquid', {}), /name/);
  });

  test('Liquid templates render, and reach no file system', () => {
    assert.equal(render('{{ name | upcase }} has {{ n | plus: 1 }}', 'liquid', { name: 'ann', n: 1 }), 'ANN has 2');
    assert.throws(() => render("{% include '/etc/passwd' %}", 'liquid', {}));
  });

  test('unsupported Go constructs and bad syntax are refused at parse time', () => {
    assert.throws(() => goToLiquid('{{ printf "%s" .x }}'), TemplateSyntaxError);
    assert.throws(() => goToLiquid('{{ if .x }}open'), /unclosed/);
    assert.throws(() => goToLiquid('{{ end }}'), /without/);
    assert.throws(() => compile('{% if %}', 'liquid'), TemplateSyntaxError);
  });

  test('the engine is detected from the text', () => {
    assert.equal(detectEngine('Hello {{ .name }}'), 'go');
    assert.equal(detectEngine('', '{{ if .x }}a{{ end }}'), 'go');
    assert.equal(detectEngine('Hello {{ name }}'), 'liquid');
    assert.equal(detectEngine('plain'), 'liquid');
  });
});
