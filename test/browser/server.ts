/**
 * A static file server for the browser tests and the web benchmark: the built page at `/`, and
 * extra directories under their own prefixes (packed model fixtures next to the page). With
 * `isolate`, every response carries the COOP/COEP headers that make the page cross-origin
 * isolated (threaded wasm); without, the page runs single-threaded.
 */
import { createReadStream, statSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, sep } from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

export interface StaticServer {
  /** Base URL with a trailing slash, e.g. http://127.0.0.1:41234/ */
  url: string;
  close(): Promise<void>;
}

/** Serves `mounts` (URL prefix such as '/' or '/fixtures/' → directory) on 127.0.0.1, a free port. */
export async function serveStatic(mounts: Record<string, string>, opts: { isolate: boolean }): Promise<StaticServer> {
  const prefixes = Object.keys(mounts).sort((a, b) => b.length - a.length);
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const prefix = prefixes.find((p) => path.startsWith(p));
    const root = prefix === undefined ? undefined : mounts[prefix]!;
    let file = root === undefined ? undefined : normalize(join(root, path.slice(prefix!.length)));
    if (file !== undefined && path.endsWith('/')) file = join(file, 'index.html');
    const headers: Record<string, string> = opts.isolate
      ? { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp', 'Cross-Origin-Resource-Policy': 'same-origin' }
      : {};
    // stay inside the mounted directory
    const inside = file !== undefined && (file + sep).startsWith(normalize(root! + sep));
    let size = -1;
    try {
      if (inside && statSync(file!).isFile()) size = statSync(file!).size;
    } catch {
      size = -1;
    }
    if (size < 0) {
      res.writeHead(404, { ...headers, 'Content-Type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, { ...headers, 'Content-Type': TYPES[extname(file!)] ?? 'application/octet-stream', 'Content-Length': size, 'Cache-Control': 'no-store' });
    createReadStream(file!).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
