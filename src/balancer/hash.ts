/**
 * A fast 32-bit string hash with good avalanche (FNV-1a over UTF-16 code
 * units, then MurmurHash3's fmix32 finaliser). FNV-1a alone clusters on
 * inputs that differ only in their last characters ("…#17", "…#18"), which
 * would bunch a hash ring's virtual nodes; the finaliser spreads them.
 *
 * @module
 */

/** Hashes `text` to an unsigned 32-bit integer. */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
