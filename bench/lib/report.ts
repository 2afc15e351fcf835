/** Plain-text table of a scenario's rows and ratios. */
import type { ScenarioResult, TargetRow } from "./types.ts";

const fmt = (n: number | undefined, digits: number) => n === undefined ? "-" : n.toFixed(digits);

export function formatResult(name: string, result: ScenarioResult): string {
  const header = ["target", "req/s", "p50 ms", "p99 ms", "errors", "rounds (req/s)"];
  const body = result.rows.map((r: TargetRow) =>
    r.status === "ok"
      ? [
        r.target,
        fmt(r.rps, 0),
        fmt(r.p50Ms, 2),
        fmt(r.p99Ms, 2),
        String(r.errors ?? 0),
        (r.roundsRps ?? []).join(" "),
      ]
      : [r.target, r.status, "", "", "", ""]
  );
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join("  ")
      .trimEnd();
  const out = [`== ${name}`, line(header), line(widths.map((w) => "-".repeat(w)))];
  out.push(...body.map(line));
  const notes = result.rows.filter((r) => r.note);
  if (notes.length) {
    out.push("");
    for (const r of notes) {
      const [first, ...rest] = r.note!.split("\n");
      out.push(`  ${r.target}: ${first}`);
      for (const l of rest) out.push(`      | ${l}`);
    }
  }
  if (result.ratios.length) {
    out.push("", "ratios:");
    const w = Math.max(...result.ratios.map((r) => r.label.length));
    for (const r of result.ratios) out.push(`  ${r.label.padEnd(w)}  ${r.value.toFixed(2)}x`);
  }
  for (const n of result.notes ?? []) out.push(`  note: ${n}`);
  return out.join("\n");
}
