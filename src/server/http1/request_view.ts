/**
 * A parsed request head as the app's request filters and cache read a
 * request ({@linkcode RequestView}), for the listener's hit path: what a
 * Web `Request` built from the same head would answer — the serialised URL,
 * field names in lower case, repeats joined with ", " — without building one.
 *
 * @module
 */
import type { HeaderView, RequestView } from "../../context/mod.ts";
import type { RequestHead } from "./head.ts";

/**
 * Memo of serialised URLs: a hit workload asks for the same few URLs again and
 * again. Bounded in entries and in the length of what it keeps (at most about
 * 2 MiB, whatever clients send); longer URLs are parsed every time.
 */
const serialised = new Map<string, string | null>();
const MEMO_ENTRIES = 1024;
const MEMO_MAX_LENGTH = 512;

function parse(raw: string): string | null {
  try {
    return new URL(raw).href;
  } catch {
    return null;
  }
}

/**
 * `new URL(raw).href` — what `new Request(raw).url` is — or undefined when
 * `raw` is no URL (the Request path answers that with 400).
 */
export function serialisedUrl(raw: string): string | undefined {
  if (raw.length > MEMO_MAX_LENGTH) return parse(raw) ?? undefined;
  let href = serialised.get(raw);
  if (href === undefined) {
    href = parse(raw);
    if (serialised.size >= MEMO_ENTRIES) serialised.clear();
    serialised.set(raw, href);
  }
  return href ?? undefined;
}

/** The header fields of a parsed head, combined like `Headers` (built on first use). */
class FieldView implements HeaderView {
  readonly #fields: readonly [string, string][];
  #combined: Map<string, string> | undefined;
  /** Set-Cookie fields stay apart when visited, as `Headers` keeps them. */
  #cookies: string[] | undefined;

  constructor(fields: readonly [string, string][]) {
    this.#fields = fields;
  }

  #map(): Map<string, string> {
    let m = this.#combined;
    if (m === undefined) {
      m = new Map();
      for (const [name, value] of this.#fields) {
        const key = name.toLowerCase();
        const had = m.get(key);
        m.set(key, had === undefined ? value : had + ", " + value);
        if (key === "set-cookie") (this.#cookies ??= []).push(value);
      }
      this.#combined = m;
    }
    return m;
  }

  get(name: string): string | null {
    return this.#map().get(name) ?? null;
  }

  has(name: string): boolean {
    return this.#map().has(name);
  }

  forEach(callback: (value: string, name: string) => void): void {
    const m = this.#map();
    for (const name of [...m.keys()].sort()) {
      if (name === "set-cookie") { for (const v of this.#cookies!) callback(v, name); }
      else callback(m.get(name)!, name);
    }
  }
}

/** A head without a body, read as a request. */
export class HeadView implements RequestView {
  readonly method: string;
  readonly url: string;
  readonly headers: HeaderView;
  readonly body = null;

  /** `url` is the serialised URL ({@linkcode serialisedUrl}). */
  constructor(head: RequestHead, url: string) {
    this.method = head.method;
    this.url = url;
    this.headers = new FieldView(head.headers);
  }
}
