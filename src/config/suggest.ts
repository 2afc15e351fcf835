/**
 * "Did you mean": the closest known setting name to a misspelt one, by
 * optimal-string-alignment distance (Damerau–Levenshtein where a
 * transposition of two neighbours counts as one edit).
 *
 * @example
 * ```ts
 * closestName("RATELIMIT_REQUESTS", ["RATE_LIMIT_REQUESTS", "PORT"]); // "RATE_LIMIT_REQUESTS"
 * ```
 * @module
 */

/** Edits (insert, delete, substitute, swap neighbours) that turn `a` into `b`. */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) => {
    const row = new Array<number>(cols).fill(0);
    row[0] = i;
    return row;
  });
  for (let j = 0; j < cols; j++) d[0][j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

/**
 * The candidate nearest to `name` (case and `_`/`-` ignored), when it is close
 * enough to be a slip: at most 2 edits, and at most a third of the name.
 */
export function closestName(name: string, candidates: readonly string[]): string | undefined {
  const norm = (s: string) => s.toUpperCase().replace(/[-_]/g, "");
  const n = norm(name);
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(n, norm(c));
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  const limit = Math.min(2, Math.floor(n.length / 3));
  return bestDistance <= limit && best !== name ? best : undefined;
}
