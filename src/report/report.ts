/**
 * Results file → report: docs/results.md text, its SVG plots and the README block. Pure (no
 * I/O): bench/report.ts reads the JSON and writes the files.
 */
import { reportPlots, type Plot } from './charts.js';
import { readmeTable, resultsMarkdown } from './markdown.js';
import type { ResultsFile } from './results.js';

export interface Report {
  markdown: string;
  plots: Plot[];
  readmeBlock: string;
}

export interface ReportOptions {
  /** The results JSON as cited (relative to the repo root), e.g. bench/results/full.json. */
  resultsPath: string;
  /** Links to the results JSON from the results page and from the README. */
  resultsLinkFromPage: string;
  resultsLinkFromReadme: string;
  /** The results page as linked from the README, e.g. docs/results.md. */
  resultsPage: string;
  /** Plots directory relative to the results page, e.g. plots. */
  plotsDir: string;
}

export function buildReport(res: ResultsFile, o: ReportOptions): Report {
  const plots = reportPlots(res);
  return {
    markdown: resultsMarkdown(res, plots, { resultsPath: o.resultsPath, resultsLink: o.resultsLinkFromPage, plotsDir: o.plotsDir }),
    plots,
    readmeBlock: readmeTable(res, { resultsPath: o.resultsPath, resultsLink: o.resultsLinkFromReadme, resultsPage: o.resultsPage }),
  };
}
