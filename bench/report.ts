/**
 * `npm run report [-- results.json]`: regenerates docs/results.md, docs/plots/*.svg and the
 * README's results block from a results file (default bench/results/full.json). `npm run bench`
 * calls writeReport after measuring.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { writeFileAtomic } from '../src/node/atomic-write.js';
import { spliceReadme } from '../src/report/markdown.js';
import { buildReport } from '../src/report/report.js';
import { parseResults } from '../src/report/results.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

export interface WriteReportOptions {
  resultsPath: string;
  /** Directory of results.md; plots go to <docsDir>/plots. */
  docsDir: string;
  readme: string;
}

const encode = (s: string) => [new TextEncoder().encode(s)];

/** Writes the report files; returns their paths. */
export function writeReport(o: WriteReportOptions): string[] {
  const res = parseResults(o.resultsPath, readFileSync(o.resultsPath, 'utf8'));
  const readmeDir = resolve(o.readme, '..');
  const page = join(o.docsDir, 'results.md');
  // cite the JSON relative to the repo root when it lies inside it (the committed results), else absolute
  const inRepo = !relative(REPO, o.resultsPath).startsWith('..');
  const r = buildReport(res, {
    resultsPath: inRepo ? relative(REPO, o.resultsPath) : o.resultsPath,
    resultsLinkFromPage: relative(o.docsDir, o.resultsPath),
    resultsLinkFromReadme: relative(readmeDir, o.resultsPath),
    resultsPage: relative(readmeDir, page),
    plotsDir: 'plots',
  });
  const plotsDir = join(o.docsDir, 'plots');
  mkdirSync(plotsDir, { recursive: true });
  const written: string[] = [];
  for (const p of r.plots) {
    const path = join(plotsDir, p.name);
    writeFileAtomic(path, encode(p.svg));
    written.push(path);
  }
  writeFileAtomic(page, encode(r.markdown));
  written.push(page);
  const readme = existsSync(o.readme) ? readFileSync(o.readme, 'utf8') : '';
  writeFileAtomic(o.readme, encode(spliceReadme(readme, r.readmeBlock)));
  written.push(o.readme);
  return written;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const opt = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const results = resolve(args.find((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--')) ?? join(REPO, 'bench/results/full.json'));
  const written = writeReport({
    resultsPath: results,
    docsDir: resolve(opt('--docs') ?? join(REPO, 'docs')),
    readme: resolve(opt('--readme') ?? join(REPO, 'README.md')),
  });
  process.stdout.write(`${written.join('\n')}\n`);
}
