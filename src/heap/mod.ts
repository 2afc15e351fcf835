/**
 * One full garbage collection when start-up or a reload is done. Building the proxy (module
 * initialisation, compiling ~150,000 filter rules) leaves 15–25 MiB of garbage in the heap
 * of each serving thread, and V8 only collects it under allocation pressure: an idle proxy
 * kept it for good (measured: RSS 116 MiB before, 90 MiB after one collection). V8 offers no
 * collection without `--expose-gc`; the flag can be set at run time, and a context made
 * afterwards (node:vm) carries the `gc` function.
 *
 * @module
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

let collect: (() => void) | undefined;

/** glibc's mallopt parameter for the mmap threshold. */
const M_MMAP_THRESHOLD = -3;
/** Allocations from this size get their own mapping, returned to the system when freed. */
export const MMAP_THRESHOLD_BYTES = 1024 * 1024;

/**
 * Fixes glibc's mmap threshold at {@linkcode MMAP_THRESHOLD_BYTES}. By default glibc raises
 * it (up to 32 MiB) each time a mapped block is freed, so after start-up frees the filter
 * lists' file buffers, later buffers of up to that size come from the heap arenas and stay
 * resident once freed. Measured with SERVE_THREADS=2: idle RSS 121 → 110 MiB. Blocks below
 * 1 MiB (body pieces of 256 KiB among them) still come from the arenas, without a system call.
 * Linux with glibc and FFI allowed only; elsewhere it does nothing. Returns whether it applied.
 */
export function fixMmapThreshold(): boolean {
  if (Deno.build.os !== "linux") return false;
  let lib;
  try {
    lib = Deno.dlopen("libc.so.6", { mallopt: { parameters: ["i32", "i32"], result: "i32" } });
  } catch {
    return false; // no FFI permission, or not glibc
  }
  try {
    return lib.symbols.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) === 1;
  } finally {
    lib.close();
  }
}

/** glibc's `malloc_trim`, or undefined where it cannot be called (not Linux, no FFI). */
let trim: (() => void) | undefined | null = null;

function mallocTrim(): (() => void) | undefined {
  if (trim !== null) return trim;
  trim = undefined;
  if (Deno.build.os !== "linux") return trim;
  try {
    const lib = Deno.dlopen("libc.so.6", {
      malloc_trim: { parameters: ["usize"], result: "i32" },
    });
    trim = () => void lib.symbols.malloc_trim(0n);
  } catch {
    // no FFI permission, or not glibc
  }
  return trim;
}

/**
 * Collects garbage now (a full, blocking collection: tens of milliseconds at most), then
 * hands the free pages of glibc's heaps back to the system (`malloc_trim`): what the
 * collection freed below 1 MiB a block stays resident otherwise, in every thread's arena.
 */
export function compactHeap(): void {
  if (collect === undefined) {
    setFlagsFromString("--expose-gc");
    collect = runInNewContext("gc") as () => void;
  }
  collect();
  mallocTrim()?.();
}

/** How often {@linkcode compactWhenIdle} looks. */
export const IDLE_CHECK_MS = 10_000;
/** Heap growth since the last collection worth a collection once idle. */
export const IDLE_GROWTH_BYTES = 16 * 1024 * 1024;

export interface IdleCompaction {
  close(): void;
}

/**
 * Collects once the proxy has gone quiet: every {@linkcode IDLE_CHECK_MS}, when `activity()`
 * (a count of requests and tunnels) has not moved since the last look and the heap has grown
 * by {@linkcode IDLE_GROWTH_BYTES} since the last collection. A burst of 10,000 requests
 * leaves ~80 MiB of garbage that V8 would otherwise keep while nothing allocates; the pause
 * (tens of milliseconds) falls where no request was served for ten seconds.
 */
export function compactWhenIdle(activity: () => number): IdleCompaction {
  let baseline = Deno.memoryUsage().heapTotal;
  let seen = activity();
  const timer = setInterval(() => {
    const now = activity();
    const quiet = now === seen;
    seen = now;
    if (!quiet || Deno.memoryUsage().heapTotal - baseline < IDLE_GROWTH_BYTES) return;
    compactHeap();
    baseline = Deno.memoryUsage().heapTotal;
  }, IDLE_CHECK_MS);
  // Never keeps the process alive.
  Deno.unrefTimer(timer);
  return { close: () => clearInterval(timer) };
}
