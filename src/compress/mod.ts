/**
 * Response compression: Accept-Encoding negotiation, the compressibility policy and the
 * codecs (br, zstd, gzip, deflate), inline, in the worker pool, or streamed.
 *
 * @example
 * ```ts
 * const compression = createCompression({ enabled: true, encodings: ["br", "zstd", "gzip"], pool });
 * const handler = cache.wrap(compression.wrap(route));
 * ```
 *
 * @module
 */
export {
  type Compression,
  type CompressionOptions,
  type CompressionSnapshot,
  createCompression,
  type SkipReason,
} from "./compression.ts";
export {
  compressStream,
  compressSync,
  type Encoding,
  ownBuffer,
  SUPPORTED_ENCODINGS,
  ZSTD_AVAILABLE,
} from "./codec.ts";
export {
  hasNoTransform,
  isCompressible,
  mergeVary,
  negotiate,
  parseAcceptEncoding,
  weakenEtag,
} from "./negotiate.ts";
