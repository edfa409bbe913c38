/**
 * Progress of a long loop on stderr: a redrawn bar with ETA on a terminal, plain lines
 * (about every 10 % or 30 s) otherwise, so logs of CI runs stay readable.
 */
export interface Progress {
  /** `detail` (optional) is shown after the counts, e.g. the item being worked on. */
  update(done: number, total: number, detail?: string): void;
  /** Ends the bar's line (terminal) or prints the final count. */
  finish(): void;
}

interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(s: string): unknown;
}

const REDRAW_MS = 100;
const LINE_EVERY_MS = 30_000;

export function createProgress(stream: ProgressStream, label: string, unit: string, now: () => number = () => performance.now()): Progress {
  const start = now();
  let lastDraw = -Infinity;
  let lastTenth = 0;
  let last = { done: 0, total: 0, detail: '' };
  let drawn = false;

  const describe = (done: number, total: number, detail = ''): string => {
    const elapsed = now() - start;
    const eta = done > 0 && done < total ? ` ETA ${formatDuration(((total - done) * elapsed) / done)}` : '';
    return `${done}/${total} ${unit} (${(total > 0 ? (100 * done) / total : 100).toFixed(1)}%), ${formatDuration(elapsed)}${eta}${detail ? ` ${detail}` : ''}`;
  };

  const drawBar = (done: number, total: number, detail?: string): void => {
    const text = describe(done, total, detail);
    const width = Math.max(10, Math.min(40, (stream.columns ?? 80) - label.length - text.length - 6));
    const filled = Math.round((width * done) / total);
    stream.write(`\r${label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${text}\x1b[K`);
    drawn = true;
  };

  return {
    update(done, total, detail = '') {
      last = { done, total, detail };
      const t = now();
      if (stream.isTTY) {
        if (t - lastDraw >= REDRAW_MS || done === total) {
          lastDraw = t;
          drawBar(done, total, detail);
        }
        return;
      }
      const tenth = Math.floor((10 * done) / total);
      if (tenth > lastTenth || t - lastDraw >= LINE_EVERY_MS) {
        lastTenth = tenth;
        lastDraw = t;
        stream.write(`${label}: ${describe(done, total, detail)}\n`);
      }
    },
    finish() {
      if (stream.isTTY && drawn) stream.write('\n');
      else if (!stream.isTTY && last.total > 0 && lastTenth < 10) stream.write(`${label}: ${describe(last.done, last.total, last.detail)}\n`);
    },
  };
}

export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}
