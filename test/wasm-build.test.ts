/**
 * The committed kernel modules must be exactly what `npm run build:wasm` produces from csrc/, so
 * nobody ships kernels that differ from the sources: wasm/kernels.wasm (SIMD128, clang) and
 * wasm/kernels-relaxed.wasm (relaxed SIMD, a clang with the relaxed builtins: clang-16+).
 * Rebuilds both into a temp dir; a module whose toolchain this machine lacks is skipped with why.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

const root = new URL('../../', import.meta.url).pathname;
const missing = ['clang', 'wasm-ld'].filter((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0);

describe('wasm kernel modules are reproducible from csrc/', { skip: missing.length > 0 && `needs ${missing.join(' and ')} (apt-get install clang lld)` }, () => {
  let dir: string;
  let log: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'bitcrush-wasm-'));
    log = execFileSync('bash', [join(root, 'scripts/build-wasm.sh'), join(dir, 'kernels.wasm'), join(dir, 'kernels-relaxed.wasm')], { encoding: 'utf8' });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const name of ['kernels.wasm', 'kernels-relaxed.wasm']) {
    it(`wasm/${name}`, (t) => {
      const out = join(dir, name);
      if (!existsSync(out)) {
        t.skip(log.split('\n').find((l) => l.startsWith('not built')) ?? `${name} was not built`);
        return;
      }
      const toolchain = readFileSync(`${out}.toolchain`, 'utf8');
      const committedToolchain = readFileSync(join(root, `wasm/${name}.toolchain`), 'utf8');
      if (toolchain !== committedToolchain) {
        t.skip(`committed ${name} was built with ${committedToolchain.trim().replace(/\n/g, ' / ')}, this machine has ${toolchain.trim().replace(/\n/g, ' / ')}`);
        return;
      }
      const built = readFileSync(out);
      const committed = readFileSync(join(root, `wasm/${name}`));
      assert.ok(built.equals(committed), `rebuilt ${name} (${built.length} bytes) differs from the committed one (${committed.length} bytes): run npm run build:wasm and commit`);
    });
  }
});
