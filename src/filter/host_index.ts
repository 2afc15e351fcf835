/**
 * A read-only set of host names in four flat typed arrays, for the ~150,000 hosts of the
 * built-in lists: about 35 bytes a host where a `Map<string, object>` took about 180 (a
 * string, a map entry and a verdict object each), and nothing for the garbage collector to
 * walk. Built once per (re)load, in a worker for big lists, and moved to the serving thread
 * as transferable buffers.
 *
 * Layout: the hosts' ASCII bytes one after another (`text`), where each starts (`starts`,
 * one more entry than hosts), each one's hash (`hashes`), and an open-addressing table of
 * entry numbers + 1 (`slots`, a power of two at most 70 % full; 0 = empty).
 *
 * @module
 */

/**
 * The arrays of a {@linkcode HostIndex}: plain data, structured-cloneable (shared memory stays
 * shared when posted to another thread). Read-only once built.
 */
export interface HostIndexData {
  readonly text: Uint8Array;
  readonly starts: Uint32Array;
  readonly hashes: Int32Array;
  readonly slots: Int32Array;
}

/** FNV-1a over the UTF-16 code units of `s` from `from` to its end. */
function hashFrom(s: string, from: number): number {
  let h = 0x811c9dc5 | 0;
  for (let i = from; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h;
}

export class HostIndex {
  readonly #text: Uint8Array;
  readonly #starts: Uint32Array;
  readonly #hashes: Int32Array;
  readonly #slots: Int32Array;
  readonly #mask: number;

  constructor(data: HostIndexData) {
    this.#text = data.text;
    this.#starts = data.starts;
    this.#hashes = data.hashes;
    this.#slots = data.slots;
    this.#mask = data.slots.length - 1;
  }

  /** Indexes `hosts` (distinct, ASCII): entry `i` is `hosts[i]`. */
  static build(hosts: Iterable<string>): HostIndexData {
    const builder = new HostIndexBuilder();
    for (const h of hosts) builder.add(h);
    return builder.build();
  }

  /** Number of hosts. */
  get size(): number {
    return this.#hashes.length;
  }

  /** The entry number of `s.slice(from)` (found without slicing), or -1. */
  find(s: string, from = 0): number {
    const hash = hashFrom(s, from);
    const length = s.length - from;
    const slots = this.#slots;
    const mask = this.#mask;
    for (let slot = hash & mask;; slot = (slot + 1) & mask) {
      const entry = slots[slot] - 1;
      if (entry < 0) return -1;
      if (this.#hashes[entry] !== hash) continue;
      const start = this.#starts[entry];
      if (this.#starts[entry + 1] - start !== length) continue;
      let same = true;
      for (let i = 0; i < length; i++) {
        if (this.#text[start + i] !== s.charCodeAt(from + i)) {
          same = false;
          break;
        }
      }
      if (same) return entry;
    }
  }

  /** The host of entry `entry`. */
  host(entry: number): string {
    let s = "";
    for (let i = this.#starts[entry]; i < this.#starts[entry + 1]; i++) {
      s += String.fromCharCode(this.#text[i]);
    }
    return s;
  }
}

/**
 * Builds a {@linkcode HostIndex} host by host, deduplicating as it goes, so that compiling a
 * list keeps no string per host: the arrays double as they fill and are cut to size at the end.
 */
export class HostIndexBuilder {
  #text: Uint8Array;
  #starts: Uint32Array;
  #hashes: Int32Array;
  #slots: Int32Array;
  #size = 0;
  #bytes = 0;

  /** Sized for about `hosts` hosts of `bytes` bytes in all (a good guess spares the copies). */
  constructor(hosts = 8, bytes = 256) {
    this.#text = new Uint8Array(Math.max(16, bytes));
    this.#starts = new Uint32Array(Math.max(8, hosts + 1));
    this.#hashes = new Int32Array(Math.max(8, hosts + 1));
    let capacity = 16;
    while (!fits(hosts, capacity)) capacity *= 2;
    this.#slots = new Int32Array(capacity);
  }

  get size(): number {
    return this.#size;
  }

  /** The entry of `host` if indexed, else -1. */
  find(host: string): number {
    return this.#probe(host, hashFrom(host, 0)).entry;
  }

  #probe(host: string, hash: number): { entry: number; slot: number } {
    const mask = this.#slots.length - 1;
    for (let slot = hash & mask;; slot = (slot + 1) & mask) {
      const entry = this.#slots[slot] - 1;
      if (entry < 0) return { entry: -1, slot };
      if (this.#hashes[entry] !== hash) continue;
      const start = this.#starts[entry];
      const end = entry + 1 < this.#size ? this.#starts[entry + 1] : this.#bytes;
      if (end - start !== host.length) continue;
      let same = true;
      for (let i = 0; i < host.length; i++) {
        if (this.#text[start + i] !== host.charCodeAt(i)) {
          same = false;
          break;
        }
      }
      if (same) return { entry, slot };
    }
  }

  /** Adds `host` (ASCII) unless present; its entry number, and whether it is new. */
  add(host: string): { entry: number; added: boolean } {
    const hash = hashFrom(host, 0);
    const found = this.#probe(host, hash);
    if (found.entry >= 0) return { entry: found.entry, added: false };
    const entry = this.#reserve(host.length);
    for (let i = 0; i < host.length; i++) {
      const code = host.charCodeAt(i);
      if (code > 0x7f) throw new Error(`not an ASCII host name: ${host}`);
      this.#text[this.#bytes++] = code;
    }
    this.#commit(entry, hash, found.slot);
    return { entry, added: true };
  }

  /**
   * Adds the host in `bytes[from, to)` (lower-case ASCII, already validated) unless present,
   * without making a string of it: the built-in lists' lines go straight in.
   */
  addBytes(bytes: Uint8Array, from: number, to: number): { entry: number; added: boolean } {
    let hash = 0x811c9dc5 | 0;
    for (let i = from; i < to; i++) hash = Math.imul(hash ^ bytes[i], 0x01000193);
    const length = to - from;
    const mask = this.#slots.length - 1;
    let slot = hash & mask;
    for (;; slot = (slot + 1) & mask) {
      const entry = this.#slots[slot] - 1;
      if (entry < 0) break;
      if (this.#hashes[entry] !== hash) continue;
      const start = this.#starts[entry];
      const end = entry + 1 < this.#size ? this.#starts[entry + 1] : this.#bytes;
      if (end - start !== length) continue;
      let same = true;
      for (let i = 0; i < length; i++) {
        if (this.#text[start + i] !== bytes[from + i]) {
          same = false;
          break;
        }
      }
      if (same) return { entry, added: false };
    }
    const entry = this.#reserve(length);
    for (let i = from; i < to; i++) this.#text[this.#bytes++] = bytes[i];
    this.#commit(entry, hash, slot);
    return { entry, added: true };
  }

  /** Room for one more host of `length` bytes; its entry number. */
  #reserve(length: number): number {
    const entry = this.#size;
    if (entry + 1 >= this.#starts.length) {
      this.#starts = grow(this.#starts, new Uint32Array(this.#starts.length * 2));
      this.#hashes = grow(this.#hashes, new Int32Array(this.#hashes.length * 2));
    }
    while (this.#bytes + length > this.#text.length) {
      this.#text = grow(this.#text, new Uint8Array(this.#text.length * 2));
    }
    this.#starts[entry] = this.#bytes;
    return entry;
  }

  /** Records entry `entry` (its bytes written) in the hash table at its free `slot`. */
  #commit(entry: number, hash: number, slot: number): void {
    this.#hashes[entry] = hash;
    this.#size++;
    if (!fits(this.#size, this.#slots.length)) this.#rehash(this.#slots.length * 2);
    else this.#slots[slot] = entry + 1;
  }

  #rehash(capacity: number): void {
    const slots = new Int32Array(capacity);
    const mask = capacity - 1;
    for (let entry = 0; entry < this.#size; entry++) {
      let slot = this.#hashes[entry] & mask;
      while (slots[slot] !== 0) slot = (slot + 1) & mask;
      slots[slot] = entry + 1;
    }
    this.#slots = slots;
  }

  /** The index, its arrays cut to size (views when little would be left over, else copies). */
  build(): HostIndexData {
    const starts = fit(this.#starts, this.#size + 1);
    starts[this.#size] = this.#bytes;
    return {
      text: fit(this.#text, this.#bytes),
      starts,
      hashes: fit(this.#hashes, this.#size),
      slots: this.#slots,
    };
  }
}

/**
 * True when `hosts` entries leave a table of `capacity` slots at most 70 % full: linear
 * probing then takes ~2 probes for a hit and ~6 for a miss (each a 32-bit hash compare), and
 * the built-in lists fit 262,144 slots (1 MiB) rather than twice that.
 */
function fits(hosts: number, capacity: number): boolean {
  return hosts * 10 <= capacity * 7;
}

/** The first `length` items of `a`: a view when at least 95 % of it is used, else a copy. */
function fit<T extends Uint8Array | Uint32Array | Int32Array>(a: T, length: number): T {
  return (length * 20 >= a.length * 19 ? a.subarray(0, length) : a.slice(0, length)) as T;
}

function grow<T extends Uint8Array | Uint32Array | Int32Array>(from: T, to: T): T {
  to.set(from);
  return to;
}

/** Bytes a typed array of `length` items of `bytes` bytes each takes, rounded up to 8. */
function aligned(length: number, bytes: number): number {
  return Math.ceil((length * bytes) / 8) * 8;
}

/**
 * A copy of `data` in one SharedArrayBuffer: posted to another serving thread, the arrays
 * are the same memory there, not a copy. Nothing writes to them after this.
 */
export function shareIndex(data: HostIndexData): HostIndexData {
  const { text, starts, hashes, slots } = data;
  const sizes = [
    aligned(text.length, 1),
    aligned(starts.length, 4),
    aligned(hashes.length, 4),
    aligned(slots.length, 4),
  ];
  const buffer = new SharedArrayBuffer(sizes.reduce((a, b) => a + b, 0));
  let at = 0;
  const place = <T extends Uint8Array | Uint32Array | Int32Array>(from: T, to: T, i: number) => {
    to.set(from);
    at += sizes[i];
    return to;
  };
  return {
    text: place(text, new Uint8Array(buffer, at, text.length), 0),
    starts: place(starts, new Uint32Array(buffer, at, starts.length), 1),
    hashes: place(hashes, new Int32Array(buffer, at, hashes.length), 2),
    slots: place(slots, new Int32Array(buffer, at, slots.length), 3),
  };
}
