/**
 * A serving thread other than the main one (SERVE_THREADS > 1): the same
 * proxy on the same port (SO_REUSEPORT), driven by messages from the main
 * thread, which owns the signals. It composes its proxy and joins the thread
 * group first ("prepared"), and listens when told to ("ready"), so every
 * thread is in the group before the first connection arrives.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { loadConfig } from "../config/mod.ts";
import { closeLogging, setupLogging } from "../log/mod.ts";
import { joinThreadGroup, type ThreadGroup } from "../threads/mod.ts";
import {
  type Instance,
  type PreparedInstance,
  prepareInstance,
  type ThreadMessage,
} from "./serve.ts";

let prepared: PreparedInstance | undefined;
let instance: Instance | undefined;
let group: ThreadGroup | undefined;

const say = (m: ThreadMessage) => self.postMessage(m);

self.onmessage = async (e: MessageEvent<ThreadMessage>) => {
  const m = e.data;
  if (m.kind === "start") {
    try {
      const loaded = loadConfig({ args: m.args, env: m.env });
      await setupLogging(loaded.config);
      group = joinThreadGroup(m.group);
      prepared = await prepareInstance(loaded, {
        thread: m.group.thread,
        threads: m.group.threads,
        group,
        readConfig: () => loadConfig({ args: m.args, env: m.env }),
      });
      say({ kind: "prepared" });
    } catch (err) {
      say({ kind: "failed", message: (err as Error).message });
    }
  } else if (m.kind === "listen") {
    try {
      instance = await prepared!.listen();
      say({ kind: "ready" });
    } catch (err) {
      say({ kind: "failed", message: (err as Error).message });
    }
  } else if (m.kind === "certificate") {
    await instance?.reloadCertificate();
  } else if (m.kind === "stop") {
    await (instance ?? prepared)?.stop(m.timeoutMs);
    group?.close();
    await closeLogging();
    say({ kind: "stopped" });
    self.close();
  }
};
