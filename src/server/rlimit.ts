/**
 * Raises the soft open-file limit to the hard limit at start (Linux,
 * macOS), as nginx's worker_rlimit_nofile would: every client connection,
 * upstream connection and tunnel is a descriptor, and a soft limit of 1024
 * is reached by a few hundred tunnels. Needs FFI (libc getrlimit and
 * setrlimit); without it the limit stays as it is.
 *
 * @module
 */

export interface OpenFileLimit {
  /** The soft limit before. */
  before: number;
  /** The soft limit now. */
  after: number;
  hard: number;
}

/** RLIMIT_NOFILE: 7 on Linux, 8 on macOS. */
const RLIMIT_NOFILE: Record<string, number> = { linux: 7, darwin: 8 };
const LIBC: Record<string, string> = { linux: "libc.so.6", darwin: "libSystem.dylib" };

/** Raises the soft limit; undefined when this platform or these permissions do not allow it. */
export function raiseOpenFileLimit(): OpenFileLimit | undefined {
  const os = Deno.build.os;
  const resource = RLIMIT_NOFILE[os];
  if (resource === undefined) return undefined;
  let lib;
  try {
    lib = Deno.dlopen(
      LIBC[os],
      {
        getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
        setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
      } as const,
    );
  } catch {
    return undefined; // no FFI permission, or no libc where we looked
  }
  try {
    const limits = new BigUint64Array(2); // struct rlimit { rlim_cur, rlim_max }
    if (lib.symbols.getrlimit(resource, limits) !== 0) return undefined;
    const before = limits[0];
    let hard = limits[1];
    // macOS refuses a soft limit above OPEN_MAX (10240) even when the hard limit is unlimited.
    if (os === "darwin" && hard > 10240n) hard = 10240n;
    if (before >= hard) {
      return { before: Number(before), after: Number(before), hard: Number(limits[1]) };
    }
    limits[0] = hard;
    if (lib.symbols.setrlimit(resource, limits) !== 0) {
      return { before: Number(before), after: Number(before), hard: Number(limits[1]) };
    }
    return { before: Number(before), after: Number(hard), hard: Number(limits[1]) };
  } catch {
    return undefined;
  } finally {
    lib.close();
  }
}
