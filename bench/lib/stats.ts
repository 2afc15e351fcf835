/** Median of a non-empty list (mean of the middle two for even lengths). */
export function median(values: number[]): number {
  if (values.length === 0) throw new Error("median of nothing");
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Parses "5s", "2m", "500ms" or "5" (seconds) into seconds; throws on anything else. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!m) throw new Error(`bad duration "${text}": use e.g. 5s, 500ms or 1m`);
  const n = Number(m[1]);
  const sec = m[2] === "ms" ? n / 1000 : m[2] === "m" ? n * 60 : n;
  if (!(sec > 0)) throw new Error(`duration must be positive, got "${text}"`);
  return sec;
}
