/** Fetching input files by URL (a model served next to the page, or anywhere CORS allows). */
import { InputError } from '../io/errors.js';

/** One named file's bytes (the name is its base name, used in error messages). */
export interface NamedBytes {
  name: string;
  bytes: Uint8Array<ArrayBuffer>;
}

export function baseName(path: string): string {
  return path.split(/[\\/]/).pop() ?? path;
}

/** GETs a URL's bytes; a network or HTTP error is an InputError naming the URL. */
export async function fetchBytes(url: string, init?: RequestInit): Promise<NamedBytes> {
  let res: Response;
  try {
    res = await fetch(url, init);
  } catch (e) {
    throw new InputError(url, `cannot fetch: ${(e as Error).message}`);
  }
  if (!res.ok) throw new InputError(url, `HTTP ${res.status} ${res.statusText}`.trim());
  const path = new URL(url, globalThis.location?.href).pathname;
  return { name: decodeURIComponent(baseName(path)), bytes: new Uint8Array(await res.arrayBuffer()) };
}
