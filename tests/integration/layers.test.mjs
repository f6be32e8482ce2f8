// The layer picture of docs/ARCHITECTURE.md is the rule: a folder of src/
// includes headers only from folders listed below it there. This test reads
// the picture and every #include in src/, so the document and the code
// cannot drift apart without a failure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function layerOrder() {
  const doc = readFileSync(path.join(root, 'docs/ARCHITECTURE.md'), 'utf8');
  const picture = doc.split('```')[1];
  const order = [];
  for (const m of picture.matchAll(/^src\/([a-z0-9_]+)\//gm)) order.push(m[1]);
  return order;
}

function sourceFiles() {
  const out = [];
  for (const dir of readdirSync(path.join(root, 'src'))) {
    const full = path.join(root, 'src', dir);
    if (!statSync(full).isDirectory()) continue;
    for (const f of readdirSync(full)) if (/\.[ch]$/.test(f)) out.push([dir, path.join(full, f)]);
  }
  return out;
}

test('every folder of src/ is in the layer picture', () => {
  const order = layerOrder();
  const dirs = readdirSync(path.join(root, 'src')).filter((d) => statSync(path.join(root, 'src', d)).isDirectory());
  for (const d of dirs) assert.ok(order.includes(d), `src/${d}/ is missing from docs/ARCHITECTURE.md`);
});

test('no #include in src/ points to a layer above its own', () => {
  const order = layerOrder();
  const rank = new Map(order.map((d, i) => [d, i]));
  const upward = [];
  for (const [layer, file] of sourceFiles()) {
    for (const m of readFileSync(file, 'utf8').matchAll(/^#include "([a-z0-9_]+)\//gm)) {
      const inc = m[1];
      if (inc === layer || !rank.has(inc)) continue;
      if (rank.get(inc) < rank.get(layer)) upward.push(`${path.relative(root, file)} includes ${inc}/`);
    }
  }
  assert.deepEqual(upward, []);
});
