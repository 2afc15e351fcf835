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

/** Adds `labels` to every sample (two forwarders report the same metric names). */
export function withLabels(
  families: MetricFamily[],
  labels: Record<string, string>,
): MetricFamily[] {
  return families.map((f) => ({
    ...f,
    samples: f.samples.map((s) => ({ ...s, labels: { ...s.labels, ...labels } })),
  }));
}

/** Joins families of the same name into one (Prometheus allows one HELP/TYPE per name). */
export function mergeFamilies(families: MetricFamily[]): MetricFamily[] {
  const byName = new Map<string, MetricFamily>();
  for (const f of families) {
    const seen = byName.get(f.name);
    byName.set(f.name, seen ? { ...seen, samples: [...seen.samples, ...f.samples] } : f);
  }
  return [...byName.values()];
}
