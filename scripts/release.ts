/**
 * `make release`: one archive per target in dist/, and dist/SHA256SUMS.
 *
 *   dist/proxy-<version>-<target>.tar.gz   Linux and macOS
 *   dist/proxy-<version>-<target>.zip      Windows
 *
 * Each archive holds one folder `proxy-<version>-<target>/` with the binary
 * (`proxy` or `proxy.exe`), README.md, LICENSE, SECURITY.md and CHANGELOG.md.
 * The archives are written here (ustar + gzip, zip + deflate) so no `tar` or
 * `zip` program is needed and the binary keeps its executable bit.
 *
 * Each target needs the denort runtime of this Deno version: downloaded by
 * `deno compile` where there is internet access (the release workflow), or
 * named per target with `DENORT_BIN_<TARGET>` (upper case, `-` as `_`, e.g.
 * `DENORT_BIN_AARCH64_APPLE_DARWIN`); `DENORT_BIN` serves this machine's
 * target. A target that cannot be built is reported in one line and the run
 * exits 1; SHA256SUMS then lists only the archives that were built.
 *
 * Usage:
 *   deno run -A scripts/release.ts [--target TRIPLE]... [--out-dir dist]
 *   deno run -A scripts/release.ts --smoke dist/proxy-<version>-<target>.tar.gz [--redis-url URL]
 *     (try a built archive for this machine from an empty directory; see smoke())
 *
 * @module
 */
import { parseArgs } from "node:util";
import { VERSION } from "../src/version.ts";
import { compile, type CompileOptions, type CompileResult, TARGETS } from "./compile.ts";

const ROOT = new URL("../", import.meta.url);
/** Files shipped beside the binary in every archive. */
export const DOCS = ["README.md", "LICENSE", "SECURITY.md", "CHANGELOG.md"] as const;

/** An entry of an archive: a path inside it, its bytes and Unix mode. */
export interface ArchiveEntry {
  path: string;
  data: Uint8Array;
  mode: number;
}

/** `proxy-<version>-<target>` (the archive's name without extension, and its folder). */
export function archiveBase(version: string, target: string): string {
  return `proxy-${version}-${target}`;
}

/** The archive file name for a target: `.zip` for Windows, `.tar.gz` otherwise. */
export function archiveName(version: string, target: string): string {
  return archiveBase(version, target) + (target.includes("windows") ? ".zip" : ".tar.gz");
}

/** The environment variable naming a target's runtime, e.g. DENORT_BIN_X86_64_APPLE_DARWIN. */
export function denortVariable(target: string): string {
  return `DENORT_BIN_${target.toUpperCase().replaceAll("-", "_")}`;
}

/** The version in deno.json; the release refuses to run when it differs from src/version.ts. */
export function denoJsonVersion(): string {
  return JSON.parse(Deno.readTextFileSync(new URL("deno.json", ROOT))).version;
}

async function pipeThrough(data: Uint8Array, stream: CompressionStream): Promise<Uint8Array> {
  const body = new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(stream);
  return new Uint8Array(await new Response(body).arrayBuffer());
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

const enc = new TextEncoder();

/** A POSIX ustar archive, gzip-compressed. Folders are implied by the paths (added first). */
export async function tarGz(entries: ArchiveEntry[], mtime = Date.now()): Promise<Uint8Array> {
  const seconds = Math.floor(mtime / 1000);
  const blocks: Uint8Array[] = [];
  const dirs = new Set<string>();
  const header = (name: string, size: number, mode: number, type: "0" | "5") => {
    if (enc.encode(name).length > 100) throw new Error(`tar: path too long: ${name}`);
    const h = new Uint8Array(512);
    const put = (off: number, len: number, s: string) => h.set(enc.encode(s).subarray(0, len), off);
    const octal = (off: number, len: number, n: number) =>
      put(off, len, n.toString(8).padStart(len - 1, "0") + "\0");
    put(0, 100, name);
    octal(100, 8, mode);
    octal(108, 8, 0);
    octal(116, 8, 0);
    octal(124, 12, size);
    octal(136, 12, seconds);
    h.fill(0x20, 148, 156); // checksum field counts as spaces while summing
    put(156, 1, type);
    put(257, 6, "ustar\0");
    put(263, 2, "00");
    put(265, 32, "root");
    put(297, 32, "root");
    const sum = h.reduce((a, b) => a + b, 0);
    put(148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
    return h;
  };
  for (const e of entries) {
    const parts = e.path.split("/").slice(0, -1);
    for (let i = 1; i <= parts.length; i++) {
      const dir = parts.slice(0, i).join("/") + "/";
      if (dirs.has(dir)) continue;
      dirs.add(dir);
      blocks.push(header(dir, 0, 0o755, "5"));
    }
    blocks.push(header(e.path, e.data.length, e.mode, "0"), e.data);
    const pad = (512 - (e.data.length % 512)) % 512;
    if (pad) blocks.push(new Uint8Array(pad));
  }
  blocks.push(new Uint8Array(1024)); // two zero blocks end the archive
  return await pipeThrough(concat(blocks), new CompressionStream("gzip"));
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (IEEE), as zip records it. */
export function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** A zip archive with deflated entries (Unix modes kept in the external attributes). */
export async function zip(entries: ArchiveEntry[], mtime = Date.now()): Promise<Uint8Array> {
  const d = new Date(mtime);
  const dosTime = (d.getUTCHours() << 11) | (d.getUTCMinutes() << 5) |
    Math.floor(d.getUTCSeconds() / 2);
  const dosDate = ((d.getUTCFullYear() - 1980) << 9) | ((d.getUTCMonth() + 1) << 5) |
    d.getUTCDate();
  const locals: Uint8Array[] = [];
  const centrals: Uint8Array[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = enc.encode(e.path);
    const packed = await pipeThrough(e.data, new CompressionStream("deflate-raw"));
    const crc = crc32(e.data);
    if (packed.length > 0xfffffff0 || offset > 0xfffffff0) throw new Error("zip: too large");
    const local = new DataView(new ArrayBuffer(30));
    local.setUint32(0, 0x04034b50, true);
    local.setUint16(4, 20, true); // version needed: 2.0 (deflate)
    local.setUint16(6, 0x0800, true); // names are UTF-8
    local.setUint16(8, 8, true); // deflate
    local.setUint16(10, dosTime, true);
    local.setUint16(12, dosDate, true);
    local.setUint32(14, crc, true);
    local.setUint32(18, packed.length, true);
    local.setUint32(22, e.data.length, true);
    local.setUint16(26, name.length, true);
    const central = new DataView(new ArrayBuffer(46));
    central.setUint32(0, 0x02014b50, true);
    central.setUint16(4, (3 << 8) | 20, true); // made by Unix, spec 2.0
    central.setUint16(6, 20, true);
    central.setUint16(8, 0x0800, true);
    central.setUint16(10, 8, true);
    central.setUint16(12, dosTime, true);
    central.setUint16(14, dosDate, true);
    central.setUint32(16, crc, true);
    central.setUint32(20, packed.length, true);
    central.setUint32(24, e.data.length, true);
    central.setUint16(28, name.length, true);
    central.setUint32(38, ((0o100000 | e.mode) << 16) >>> 0, true); // regular file + mode
    central.setUint32(42, offset, true);
    const localBytes = concat([new Uint8Array(local.buffer), name, packed]);
    locals.push(localBytes);
    centrals.push(new Uint8Array(central.buffer), name);
    offset += localBytes.length;
  }
  const dir = concat(centrals);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, entries.length, true);
  end.setUint16(10, entries.length, true);
  end.setUint32(12, dir.length, true);
  end.setUint32(16, offset, true);
  return concat([...locals, dir, new Uint8Array(end.buffer)]);
}

/** Hex SHA-256 of bytes. */
export async function sha256(data: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** SHA256SUMS text in `sha256sum -c` format: "<hex>  <name>" per line. */
export function sha256sums(sums: { name: string; hex: string }[]): string {
  return sums.map((s) => `${s.hex}  ${s.name}\n`).join("");
}

/** Builds the archive for a target from an already compiled binary; returns its bytes. */
export async function packTarget(
  version: string,
  target: string,
  binary: Uint8Array,
): Promise<Uint8Array> {
  const base = archiveBase(version, target);
  const windows = target.includes("windows");
  const entries: ArchiveEntry[] = [
    { path: `${base}/${windows ? "proxy.exe" : "proxy"}`, data: binary, mode: 0o755 },
  ];
  for (const doc of DOCS) {
    entries.push({
      path: `${base}/${doc}`,
      data: await Deno.readFile(new URL(doc, ROOT)),
      mode: 0o644,
    });
  }
  return windows ? await zip(entries) : await tarGz(entries);
}

/** Returns a TCP port that was free on 127.0.0.1 a moment ago. */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = l.addr as Deno.NetAddr;
  l.close();
  return port;
}

async function waitForPort(port: number, child: Deno.ChildProcess, what: string): Promise<void> {
  let exited = false;
  child.status.then(() => exited = true);
  const deadline = Date.now() + 30_000;
  while (true) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      if (exited) throw new Error(`${what} exited before listening on ${port}`);
      if (Date.now() > deadline) throw new Error(`${what} did not listen on ${port} within 30 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export interface SmokeOptions {
  /** A Redis for the shared cache (CACHE_BACKEND=redis); memory cache without it. */
  redisUrl?: string;
  log?: (line: string) => void;
}

/**
 * Unpacks a `.tar.gz` release archive into an empty temporary directory and
 * uses the binary from there, where no source tree exists: `--version`; a
 * forward proxy in front of `proxy backend` (a cache MISS then HIT, a large
 * body compressed in the worker pool); the built-in filter lists loaded; the
 * dashboard page and its chart library served. Returns the failed checks
 * (empty: all passed). Needs `tar`.
 */
export async function smoke(archive: string, options: SmokeOptions = {}): Promise<string[]> {
  const log = options.log ?? console.log;
  const failures: string[] = [];
  const check = (ok: boolean, what: string) => {
    log(`smoke: ${ok ? "ok  " : "FAIL"} ${what}`);
    if (!ok) failures.push(what);
  };
  const tmp = await Deno.makeTempDir({ prefix: "proxy-smoke-" });
  const children: Deno.ChildProcess[] = [];
  const client = Deno.createHttpClient({});
  try {
    const untar = await new Deno.Command("tar", { args: ["xzf", archive, "-C", tmp] }).output();
    if (!untar.success) throw new Error(`tar could not unpack ${archive}`);
    const folder = [...Deno.readDirSync(tmp)].find((e) => e.isDirectory)?.name;
    if (!folder) throw new Error(`${archive} holds no folder`);
    const binary = `${tmp}/${folder}/proxy`;
    const cwd = `${tmp}/run`;
    await Deno.mkdir(cwd);
    const version = await new Deno.Command(binary, { args: ["--version"], cwd }).output();
    const versionText = new TextDecoder().decode(version.stdout);
    check(
      version.success && versionText.startsWith(`proxy ${VERSION}\n`) &&
        /^deno \d/m.test(versionText) && /^v8 /m.test(versionText) &&
        /^target \S+/m.test(versionText),
      `--version prints proxy ${VERSION}, deno, v8 and target`,
    );
    const spawn = (args: string[], env: Record<string, string> = {}) => {
      const child = new Deno.Command(binary, {
        args,
        cwd,
        env: { LOG_LEVEL: "warn", ...env },
        stdin: "null",
        stdout: "null",
        stderr: "inherit",
      }).spawn();
      children.push(child);
      return child;
    };
    const origin = freePort();
    await waitForPort(origin, spawn(["backend", "--port", String(origin)]), "proxy backend");
    const port = freePort();
    const proxyEnv: Record<string, string> = {
      HOST: "127.0.0.1",
      PORT: String(port),
      FORWARD_ALLOW_PRIVATE: "true",
      RATE_LIMIT_REQUESTS: "0",
      CACHE_BACKEND: options.redisUrl ? "redis" : "memory",
    };
    if (options.redisUrl) proxyEnv.REDIS_URL = options.redisUrl;
    await waitForPort(port, spawn([], proxyEnv), "proxy");
    const proxied = Deno.createHttpClient({ proxy: { url: `http://127.0.0.1:${port}` } });
    try {
      const get = async (path: string, headers: Record<string, string> = {}) => {
        const res = await fetch(`http://127.0.0.1:${origin}${path}`, { client: proxied, headers });
        const body = new Uint8Array(await res.arrayBuffer());
        return { res, body };
      };
      const first = await get("/cache/60");
      const second = await get("/cache/60");
      check(
        first.res.status === 200 && second.res.headers.get("x-cache") === "HIT",
        `forward proxy: /cache/60 answered ${first.res.status}, then X-Cache ${
          second.res.headers.get("x-cache")
        } (${proxyEnv.CACHE_BACKEND} cache)`,
      );
      const large = await get("/large", { "accept-encoding": "gzip" });
      check(
        large.res.headers.get("content-encoding") === "gzip",
        `a large body came back gzip-compressed (${large.body.length} bytes decoded)`,
      );
    } finally {
      proxied.close();
    }
    const stats = await (await fetch(`http://127.0.0.1:${port}/proxy-stats`, { client })).json();
    const rules = Object.values(stats.filter?.rules ?? {}) as number[];
    check(
      rules.length === 3 && rules.every((n) => n > 0),
      `built-in filter lists loaded: ${JSON.stringify(stats.filter?.rules)}`,
    );
    check(
      stats.workers?.completed > 0 && stats.workers?.failed === 0,
      `worker pool ran tasks: ${stats.workers?.completed} completed, ${stats.workers?.failed} failed`,
    );
    const dash = freePort();
    await waitForPort(
      dash,
      spawn(["dashboard", "--host", "127.0.0.1", "--port", String(dash)]),
      "proxy dashboard",
    );
    const page = await (await fetch(`http://127.0.0.1:${dash}/`, { client })).text();
    const chart = await fetch(`http://127.0.0.1:${dash}/assets/uplot.js`, { client });
    const chartText = await chart.text();
    check(
      page.includes("<title>proxy dashboard</title>") && chart.ok && chartText.includes("uPlot"),
      "dashboard serves its page and chart library",
    );
  } catch (err) {
    check(false, err instanceof Error ? err.message : String(err));
  } finally {
    client.close();
    for (const c of children) {
      try {
        c.kill("SIGTERM");
      } catch { /* exited */ }
      await c.status;
    }
    await Deno.remove(tmp, { recursive: true });
  }
  return failures;
}

export interface ReleaseResult {
  built: string[];
  /** One line per target that could not be built. */
  failures: string[];
}

export interface ReleaseOptions {
  log?: (line: string) => void;
  /** Failures, one line each. */
  warn?: (line: string) => void;
  /** The compile step; default {@linkcode compile} (tests pass one that needs no runtime). */
  build?: (options: CompileOptions) => Promise<CompileResult>;
}

/** Compiles and packs every target into outDir, then writes outDir/SHA256SUMS. */
export async function release(
  targets: readonly string[],
  outDir: string,
  options: ReleaseOptions = {},
): Promise<ReleaseResult> {
  const { log = console.log, warn = console.error, build = compile } = options;
  await Deno.mkdir(outDir, { recursive: true });
  const work = await Deno.makeTempDir({ prefix: "proxy-release-" });
  const built: string[] = [];
  const failures: string[] = [];
  const sums: { name: string; hex: string }[] = [];
  try {
    for (const target of targets) {
      const name = archiveName(VERSION, target);
      await Deno.remove(`${outDir}/${name}`).catch(() => {});
      const denortBin = Deno.env.get(denortVariable(target)) ??
        (target === Deno.build.target ? Deno.env.get("DENORT_BIN") : undefined);
      const denortSetting = target === Deno.build.target
        ? `DENORT_BIN (or ${denortVariable(target)})`
        : denortVariable(target);
      const output = `${work}/${target}/proxy`;
      await Deno.mkdir(`${work}/${target}`, { recursive: true });
      const res = await build({ target, output, denortBin, denortSetting });
      if (!res.ok) {
        failures.push(res.error!);
        warn(res.error!);
        continue;
      }
      const archive = await packTarget(VERSION, target, await Deno.readFile(res.output));
      await Deno.writeFile(`${outDir}/${name}`, archive);
      sums.push({ name, hex: await sha256(archive) });
      built.push(name);
      log(`release: ${outDir}/${name} (${(archive.length / 1048576).toFixed(1)} MiB)`);
    }
  } finally {
    await Deno.remove(work, { recursive: true });
  }
  await Deno.writeTextFile(`${outDir}/SHA256SUMS`, sha256sums(sums));
  return { built, failures };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      target: { type: "string", multiple: true },
      "out-dir": { type: "string", default: "dist" },
      smoke: { type: "string" },
      "redis-url": { type: "string" },
    },
  });
  if (values.smoke) {
    const failed = await smoke(values.smoke, { redisUrl: values["redis-url"] });
    if (failed.length) console.error(`smoke: ${failed.length} checks failed`);
    Deno.exit(failed.length ? 1 : 0);
  }
  if (denoJsonVersion() !== VERSION) {
    console.error(
      `release: deno.json says ${denoJsonVersion()} but src/version.ts says ${VERSION}; make them equal`,
    );
    Deno.exit(1);
  }
  const targets = values.target ?? [...TARGETS];
  for (const t of targets) {
    if (!(TARGETS as readonly string[]).includes(t)) {
      console.error(`release: unknown target ${t} (one of ${TARGETS.join(", ")})`);
      Deno.exit(2);
    }
  }
  const outDir = values["out-dir"]!;
  const { built, failures } = await release(targets, outDir);
  if (failures.length > 0) {
    console.error(
      `release: ${failures.length} of ${targets.length} targets not built; ${outDir}/SHA256SUMS lists the ${built.length} built`,
    );
    Deno.exit(1);
  }
  console.log(`release: ${outDir}/SHA256SUMS (${built.length} archives)`);
}
