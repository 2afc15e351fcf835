/** A worker entry for the pool's own tests: echo, slow, hanging and crashing tasks. */
import { serveTasks } from "../serve.ts";

serveTasks({
  echo(task) {
    const data = task.data as ArrayBuffer;
    return { value: { data, pid: task.pid }, transfer: data ? [data] : [] };
  },
  async sleep(task) {
    await new Promise((r) => setTimeout(r, Number(task.ms)));
    return { value: "slept" };
  },
  spin(task) {
    const until = Date.now() + Number(task.ms);
    while (Date.now() < until) { /* busy: the worker cannot answer */ }
    return { value: "spun" };
  },
  fail() {
    throw new Error("handler failed on purpose");
  },
  crash() {
    // Thrown outside the handler: an uncaught error in the worker, as a bug would be.
    setTimeout(() => {
      throw new Error("worker crashed on purpose");
    }, 0);
    return new Promise(() => {});
  },
  /** Crashes on its first run (marker file absent), answers on the retry; tests retries. */
  flaky(task) {
    const marker = String(task.marker);
    try {
      Deno.statSync(marker);
      return { value: "ok after retry" };
    } catch {
      Deno.writeTextFileSync(marker, "crashed once");
      setTimeout(() => {
        throw new Error("flaky crash");
      }, 0);
      return new Promise(() => {});
    }
  },
});
