/**
 * Ports for test servers come from below the kernel's ephemeral range (32768–60999 on Linux):
 * outgoing connections and `port: 0` listeners take their ports from that range, so a port
 * from here cannot be taken by one of them while a test restarts a process on it. Only another
 * `freePort()` in a parallel test could pick the same one, one chance in ~12,000.
 */
const RANGE_START = 20_000;
const RANGE_END = 32_767;

/** Ports this process has handed out: never handed out twice. */
const handedOut = new Set<number>();

/**
 * Returns a TCP port that was free on 127.0.0.1 a moment ago (see the range above), for a server
 * the test starts. For a port where nothing may listen (a backend or Redis that is down), use
 * {@linkcode closedPort}.
 */
export function freePort(): number {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = RANGE_START + Math.floor(Math.random() * (RANGE_END - RANGE_START + 1));
    // Free now is not enough: two calls before either port is taken (two backends of one
    // proxy) drew the same number once in ten suite runs.
    if (handedOut.has(port)) continue;
    try {
      const listener = Deno.listen({ hostname: "127.0.0.1", port });
      listener.close();
      handedOut.add(port);
      return port;
    } catch (err) {
      if (!(err instanceof Deno.errors.AddrInUse)) throw err;
    }
  }
  // A crowded range: let the kernel choose (ephemeral, so restarts on it are less safe).
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Ports 1000–1019: no service of its own, and not on fetch's "bad port" list (1–19 are). */
const CLOSED_FIRST = 1000;
const CLOSED_LAST = 1019;
let nextClosed = CLOSED_FIRST + Math.floor(Math.random() * (CLOSED_LAST - CLOSED_FIRST + 1));

/**
 * A port where nothing listens and nothing will (a dead backend, an absent Redis): a port from
 * `freePort()` stays free only until a parallel test module's `freePort()` draws it for a server
 * of its own, and once a "down" backend answered that way (the test waited 10 s for a 502).
 * Ports below 1024 come neither from `freePort()` nor from the kernel. Consecutive calls give
 * different ports (two dead backends of one proxy).
 */
export function closedPort(): number {
  for (let attempt = 0; attempt <= CLOSED_LAST - CLOSED_FIRST; attempt++) {
    const port = nextClosed;
    nextClosed = port === CLOSED_LAST ? CLOSED_FIRST : port + 1;
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
      return port;
    } catch (err) {
      // Not root: nobody else may bind it either.
      if (err instanceof Deno.errors.PermissionDenied) return port;
      if (!(err instanceof Deno.errors.AddrInUse)) throw err;
    }
  }
  throw new Error(`every port from ${CLOSED_FIRST} to ${CLOSED_LAST} is in use`);
}

/**
 * Starts a process that must listen on a given port (a restart on the port it had) and retries
 * while the port is still taken: `spawn` starts it and resolves true once it listens, or false
 * when it exited without listening (address in use). Gives up after `timeoutMs`.
 */
export async function startOnPort(
  port: number,
  spawn: () => Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await spawn())) {
    if (Date.now() > deadline) throw new Error(`port ${port} stayed in use for ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Resolves once something accepts TCP connections on the port, or rejects after `timeoutMs`. */
export async function waitForPort(port: number, timeoutMs = 20_000, hostname = "127.0.0.1") {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    try {
      const conn = await Deno.connect({ hostname, port });
      conn.close();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`nothing listens on ${hostname}:${port}: ${err}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
