/**
 * The production worker entry: compression of large bodies and bcrypt password checks. Started by the pool with `new Worker(url, { type: "module" })`.
 * Each job's module is imported on its first task: a worker that only compresses never
 * loads bcrypt.
 *
 * @module
 */
import { serveTasks } from "./serve.ts";

serveTasks({
  /** `{ data: ArrayBuffer }` → the same buffer: measures the bare round trip. */
  echo(task) {
    const data = task.data as ArrayBuffer;
    return { value: data, transfer: [data] };
  },
  /** `{ encoding, data: ArrayBuffer }` → the compressed body as a transferred ArrayBuffer. */
  async compress(task) {
    const { compressSync, ownBuffer } = await import("../compress/codec.ts");
    const out = compressSync(
      task.encoding as Parameters<typeof compressSync>[0],
      new Uint8Array(task.data as ArrayBuffer),
    );
    const buffer = ownBuffer(out);
    return { value: buffer, transfer: [buffer] };
  },
  /** `{ password, hash }` → whether the password matches the bcrypt hash (tens of ms of CPU). */
  async "auth.bcrypt"(task) {
    const { default: bcrypt } = await import("bcryptjs");
    return { value: bcrypt.compareSync(String(task.password), String(task.hash)) };
  },
});
