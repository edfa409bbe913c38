// Builds the optional OpenBLAS addon with bitcrush's native low-bit kernels (npm's install hook
// and `npm run build:native`) from the committed C, with the machine's compiler; the kernels
// pick their instruction set (AVX-512 VNNI, AVX2, NEON dot product, scalar) at run time.
// Never fails the install: when a compiler, OpenBLAS or node-gyp is missing, or the build
// fails, it prints one line and exits 0, and bitcrush uses the WebAssembly backend.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const skip = (why) => {
  console.log(`bitcrush: native backend not built (${why}); the wasm backend will be used`);
  process.exit(0);
};

try {
  if (process.env.BITCRUSH_SKIP_NATIVE) skip('BITCRUSH_SKIP_NATIVE is set');
  const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
  if (!has('cc') && !has('gcc')) skip('no C compiler');
  if (!has('make')) skip('no make');
  const includes = ['/usr/include', '/usr/include/x86_64-linux-gnu', '/usr/include/aarch64-linux-gnu', '/usr/include/openblas', '/usr/local/include'];
  if (!includes.some((d) => existsSync(join(d, 'cblas.h')))) skip('OpenBLAS headers not found: apt-get install libopenblas-dev');
  const libs = ['/usr/lib', '/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/local/lib'];
  if (!libs.some((d) => existsSync(join(d, 'libopenblas.so')))) skip('libopenblas.so not found: apt-get install libopenblas-dev');

  // npm exports npm_config_node_gyp to lifecycle scripts; otherwise use the copy npm bundles.
  const gyp = [process.env.npm_config_node_gyp, join(dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js')]
    .find((p) => p && existsSync(p));
  if (!gyp) skip('node-gyp not found');
  const args = [gyp, 'rebuild', `--directory=${here}`];
  // Without a nodedir node-gyp downloads headers, which fails offline: use the installed ones.
  const prefix = join(dirname(process.execPath), '..');
  if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include/node/node_api.h'))) args.push(`--nodedir=${prefix}`);
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) {
    const log = join(tmpdir(), 'bitcrush-native-build.log');
    writeFileSync(log, `${r.stdout ?? ''}\n${r.stderr ?? ''}\n${r.error ?? ''}`);
    skip(`build failed, see ${log}`);
  }
  let isa = 'unknown';
  try {
    isa = createRequire(import.meta.url)(join(here, 'build/Release/bitcrush_native.node')).lowbitIsa();
  } catch {
    // a build that does not load is reported by the backend at run time
  }
  console.log(`bitcrush: native backend built (OpenBLAS; low-bit kernels: ${isa})`);
} catch (e) {
  skip(`unexpected error: ${e instanceof Error ? e.message : e}`);
}
