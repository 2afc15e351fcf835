/**
 * Deterministic bodies the test origin serves, built once per backend so the
 * hot endpoints only copy prepared bytes.
 *
 * The `/bytes/:n` pattern is a pure function of the byte offset and a seed, so
 * a test can compute exactly what it should have received:
 *
 * ```ts
 * import { patternBytes } from "./content.ts";
 * const expected = patternBytes(1000, 7); // what GET /bytes/1000?seed=7 returns
 * ```
 *
 * @module
 */

/** Size of one streamed chunk of `/bytes/:n`; a multiple of the pattern period (256). */
export const CHUNK_SIZE = 64 * 1024;

/** Largest body `/bytes/:n` serves (2 GiB). */
export const MAX_BYTES = 2 * 1024 * 1024 * 1024;

/** Byte at `offset` of the `/bytes` pattern for `seed` (0–255): `(offset * 7 + seed) mod 256`. */
export function patternByte(offset: number, seed = 0): number {
  return (offset * 7 + seed) & 0xff;
}

/** The first `n` bytes of the `/bytes` pattern for `seed`. */
export function patternBytes(n: number, seed = 0): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = patternByte(i, seed);
  return out;
}

/**
 * One {@link CHUNK_SIZE} block of the pattern. Because the pattern repeats
 * every 256 bytes and CHUNK_SIZE is a multiple of 256, every chunk of a
 * `/bytes` body is a prefix of this same block.
 */
export function patternChunk(seed = 0): Uint8Array<ArrayBuffer> {
  return patternBytes(CHUNK_SIZE, seed);
}

/** The HTML page served at `/` (about 1 KiB). */
export function htmlPage(name: string): string {
  const items = Array.from(
    { length: 12 },
    (_, i) => `      <li><a href="/bytes/${1024 * (i + 1)}">/bytes/${1024 * (i + 1)}</a></li>`,
  ).join("\n");
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <title>backend ${escapeHtml(name)}</title>
  </head>
  <body>
    <h1>Test origin ${escapeHtml(name)}</h1>
    <p>A deterministic origin server for the proxy's tests and benchmarks.</p>
    <ul>
${items}
    </ul>
  </body>
</html>
`;
}

/** The JSON document served at `/json`. */
export function jsonDocument(name: string): string {
  return JSON.stringify({
    backend: name,
    slideshow: {
      title: "Sample Slide Show",
      author: "proxy test origin",
      date: "2026-01-01",
      slides: [
        { title: "Caching", items: ["RFC 9111", "LRU", "Redis"] },
        { title: "Balancing", items: ["round robin", "least connections", "health checks"] },
        { title: "Filtering", items: ["ads", "trackers", "malware"] },
      ],
    },
  });
}

/** The ~600 KB text body served at `/large`: numbered lines of fixed text. */
export function largeText(): string {
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size < 600_000; i++) {
    const line = `${String(i).padStart(6, "0")} The quick brown fox jumps over the lazy dog.\n`;
    lines.push(line);
    size += line.length;
  }
  return lines.join("");
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
