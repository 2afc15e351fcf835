/**
 * Prometheus text exposition format 0.0.4, written exactly: HELP and TYPE
 * lines, escaped label values, one family per name.
 *
 * @module
 */
import type { MetricFamily } from "./metric.ts";

export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

function escapeHelp(s: string): string {
  return s.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

function escapeLabel(s: string): string {
  return s.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

export function renderPrometheus(families: readonly MetricFamily[]): string {
  const seen = new Set<string>();
  let out = "";
  for (const f of families) {
    if (seen.has(f.name)) continue;
    seen.add(f.name);
    out += `# HELP ${f.name} ${escapeHelp(f.help)}\n# TYPE ${f.name} ${f.type}\n`;
    for (const s of f.samples) {
      const labels = s.labels && Object.keys(s.labels).length > 0
        ? "{" +
          Object.entries(s.labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",") +
          "}"
        : "";
      out += `${f.name}${s.suffix ?? ""}${labels} ${formatValue(s.value)}\n`;
    }
  }
  return out;
}
