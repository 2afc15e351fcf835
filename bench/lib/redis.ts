/** A private redis-server on a free port (never the shared one on 6379), nothing on disk. */
import { freePort, type Proc, startProcess } from "./process.ts";

export async function startRedis(): Promise<{ url: string; proc: Proc }> {
  const port = freePort();
  const proc = await startProcess({
    name: "redis-server",
    cmd: "redis-server",
    args: ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    readyPort: port,
  });
  return { url: `redis://127.0.0.1:${port}`, proc };
}
