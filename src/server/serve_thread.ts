/**
 * A serving thread other than the main one (SERVE_THREADS > 1): the same
 * proxy on the same port (SO_REUSEPORT), driven by messages from the main
 * thread, which owns the signals.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { loadConfig } from "../config/mod.ts";
import { closeLogging, setupLogging } from "../log/mod.ts";
import { type Instance, startInstance, type ThreadMessage } from "./serve.ts";

let instance: Instance | undefined;

self.onmessage = async (e: MessageEvent<ThreadMessage>) => {
  const m = e.data;
  if (m.kind === "start") {
    try {
      const loaded = loadConfig({ args: m.args, env: m.env });
      await setupLogging(loaded.config);
      instance = await startInstance(loaded, {
        thread: m.thread,
        threads: m.threads,
        readConfig: () => loadConfig({ args: m.args, env: m.env }),
      });
      self.postMessage({ kind: "ready" } satisfies ThreadMessage);
    } catch (err) {
      self.postMessage({ kind: "failed", message: (err as Error).message } satisfies ThreadMessage);
    }
  } else if (m.kind === "reload") {
    await instance?.reload();
  } else if (m.kind === "stop") {
    await instance?.stop(m.timeoutMs);
    await closeLogging();
    self.postMessage({ kind: "stopped" } satisfies ThreadMessage);
    self.close();
  }
};
