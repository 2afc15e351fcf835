/**
 * Statistics: the proxy's counters, latency histograms, `/proxy-stats`
 * JSON and Prometheus `/metrics` text.
 *
 * @module
 */
export { Histogram, type HistogramState, type LatencySummary } from "./histogram.ts";
export { mergeBackends, mergeReports, StatsCluster, sumFamilies } from "./cluster.ts";
export {
  counter,
  gauge,
  type MetricFamily,
  type MetricType,
  type Sample,
  type StatsSource,
} from "./metric.ts";
export {
  mergeFamilies,
  PROMETHEUS_CONTENT_TYPE,
  renderPrometheus,
  withLabels,
} from "./prometheus.ts";
export { ProxyStats, type ProxyStatsOptions, type ThreadReport } from "./proxy_stats.ts";
