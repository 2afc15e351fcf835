export {
  compressStream,
  compressSync,
  type Encoding,
  ownBuffer,
  SUPPORTED_ENCODINGS,
  ZSTD_AVAILABLE,
} from "./codec.ts";
