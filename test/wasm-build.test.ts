/**
 * The committed wasm/kernels.wasm must be exactly what `npm run build:wasm` produces from
 * csrc/, so nobody ships kernels that differ from the sources. Rebuilds into a temp dir.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const root = new URL('../../', import.meta.url).pathname;
const missing = ['clang', 'wasm-ld'].filter((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0);

test('wasm/kernels.wasm is reproducible from csrc/', { skip: missing.length > 0 && `needs ${missing.join(' and ')} (apt-get install clang lld)` }, (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bitcrush-wasm-'));
  try {
    const out = join(dir, 'kernels.wasm');
    execFileSync('bash', [join(root, 'scripts/build-wasm.sh'), out], { stdio: 'pipe' });
    const built = readFileSync(out);
    const committed = readFileSync(join(root, 'wasm/kernels.wasm'));
    const toolchain = readFileSync(`${out}.toolchain`, 'utf8');
    const committedToolchain = readFileSync(join(root, 'wasm/kernels.wasm.toolchain'), 'utf8');
    if (toolchain !== committedToolchain) {
      t.skip(`committed kernels.wasm was built with ${committedToolchain.trim().replace(/\n/g, ' / ')}, this machine has ${toolchain.trim().replace(/\n/g, ' / ')}`);
      return;
    }
    assert.ok(built.equals(committed), `rebuilt kernels.wasm (${built.length} bytes) differs from the committed one (${committed.length} bytes): run npm run build:wasm and commit`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
