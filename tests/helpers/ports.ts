/** Returns a TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
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
