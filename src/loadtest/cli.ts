/**
 * `proxy loadtest`: flags in, report out (text or JSON on stdout), a
 * progress bar on stderr when it is a terminal.
 *
 * @module
 */
import { OptionsError, parseCliArgs, USAGE } from "./options.ts";
import { formatReport } from "./report.ts";
import { loadtest, type Progress } from "./runner.ts";

const encoder = new TextEncoder();

/** Renders one progress line (no newline) at most `width` characters wide. */
export function progressLine(p: Progress, width = 80): string {
  const pct = Math.floor(p.fraction * 100);
  const stats = ` ${String(pct).padStart(3)}% ${p.elapsed_s.toFixed(1)}s ${p.requests} req ` +
    `${Math.round(p.current_rps)} req/s ${p.errors} err`;
  const barWidth = Math.max(10, Math.min(40, width - stats.length - 3));
  const filled = Math.round(p.fraction * barWidth);
  return `[${"#".repeat(filled)}${"-".repeat(barWidth - filled)}]${stats}`;
}

/** Runs `proxy loadtest` with the arguments after the subcommand; returns the exit code. */
export async function runLoadtest(args: string[]): Promise<number> {
  let req;
  try {
    req = parseCliArgs(args);
  } catch (err) {
    if (err instanceof OptionsError) {
      console.error(`proxy loadtest: ${err.message}`);
      return 2;
    }
    throw err;
  }
  if (req.kind === "help") {
    console.log(USAGE);
    return 0;
  }
  const tty = Deno.stderr.isTerminal();
  const columns = tty ? safeColumns() : 80;
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  try {
    const report = await loadtest(req.options, {
      signal: controller.signal,
      onProgress: tty
        ? (p) => Deno.stderr.writeSync(encoder.encode(`\r${progressLine(p, columns)}\x1b[K`))
        : undefined,
    });
    if (tty) Deno.stderr.writeSync(encoder.encode("\r\x1b[K"));
    console.log(req.json ? JSON.stringify(report, null, 2) : formatReport(report));
    // The text report has its WARNING lines; with --json a person at the terminal still sees them.
    if (req.json && tty) { for (const w of report.warnings) console.error(`warning: ${w}`); }
    return report.requests === 0 && report.errors_total > 0 ? 1 : 0;
  } catch (err) {
    if (err instanceof OptionsError) {
      console.error(`proxy loadtest: ${err.message}`);
      return 2;
    }
    throw err;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
  }
}

function safeColumns(): number {
  try {
    return Deno.consoleSize().columns;
  } catch {
    return 80;
  }
}
