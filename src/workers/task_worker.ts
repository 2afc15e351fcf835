/**
 * The production worker entry: compression of large bodies, parsing of big filter
 * lists and bcrypt password checks. Started by the pool with `new Worker(url, { type: "module" })`.
 *
 * @module
 */
import { compressSync, type Encoding, ownBuffer } from "../compress/mod.ts";
import bcrypt from "bcryptjs";
import { parseList } from "../filter/mod.ts";
import { serveTasks } from "./serve.ts";

serveTasks({
  /** `{ data: ArrayBuffer }` → the same buffer: measures the bare round trip. */
  echo(task) {
    const data = task.data as ArrayBuffer;
    return { value: data, transfer: [data] };
  },
  /** `{ encoding, data: ArrayBuffer }` → the compressed body as a transferred ArrayBuffer. */
  compress(task) {
    const out = compressSync(task.encoding as Encoding, new Uint8Array(task.data as ArrayBuffer));
    const buffer = ownBuffer(out);
    return { value: buffer, transfer: [buffer] };
  },
  /** `{ data: ArrayBuffer (UTF-8 list), source }` → ParsedList. */
  "filter.parse"(task) {
    const text = new TextDecoder().decode(task.data as ArrayBuffer);
    return { value: parseList(text, String(task.source)) };
  },
  /** `{ password, hash }` → whether the password matches the bcrypt hash (tens of ms of CPU). */
  "auth.bcrypt"(task) {
    return { value: bcrypt.compareSync(String(task.password), String(task.hash)) };
  },
});
