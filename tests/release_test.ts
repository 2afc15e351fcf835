/**
 * Release: the embedded-file list covers every file the program opens at run
 * time; the compile step (with DENORT_BIN where a runtime is available) and
 * its refusals; archives and checksums; `--version` and every `--help`.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { embeddedFiles, embeddedRelative } from "../scripts/embedded.ts";
import { binaryPath, compile, type CompileOptions, TARGETS } from "../scripts/compile.ts";
import {
  archiveName,
  crc32,
  denoJsonVersion,
  DOCS,
  packTarget,
  release,
  sha256,
  sha256sums,
  smoke,
} from "../scripts/release.ts";
import { WORKER_ENTRIES } from "../src/workers/mod.ts";
import { BUILTIN_LISTS } from "../src/filter/mod.ts";
import { VERSION } from "../src/version.ts";
import { ignoreUnless } from "./helpers/ignore.ts";

const ROOT = new URL("../", import.meta.url);
const MAIN = fileURLToPath(new URL("main.ts", ROOT));
const dec = new TextDecoder();

/** Runs `deno run -A main.ts ...args` from the project root. */
async function proxyCli(...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd: fileURLToPath(ROOT),
    stdin: "null",
    env: { NO_COLOR: "1" },
  }).output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Local modules of the graph rooted at `entry` (static and dynamic imports), from `deno info`. */
async function moduleGraph(entry: string): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: fileURLToPath(ROOT),
  }).output();
  assert.ok(out.success, dec.decode(out.stderr));
  const info = JSON.parse(dec.decode(out.stdout)) as { modules: { specifier: string }[] };
  return info.modules.map((m) => m.specifier).filter((s) => s.startsWith("file:"));
}

Deno.test("src/version.ts and deno.json carry the same version", () => {
  assert.match(VERSION, /^\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?$/);
  assert.equal(denoJsonVersion(), VERSION);
  const changelog = Deno.readTextFileSync(new URL("CHANGELOG.md", ROOT));
  assert.match(
    changelog,
    new RegExp(`^## \\[${VERSION.replaceAll(".", "\\.")}\\] - \\d{4}-\\d\\d-\\d\\d$`, "m"),
  );
});

Deno.test("every file the compiled program reads at run time is embedded", async () => {
  const embedded = new Set(embeddedFiles());
  for (const f of embedded) assert.ok(Deno.statSync(f).isFile, `${f} is listed but missing`);
  for (const u of WORKER_ENTRIES) assert.ok(embedded.has(fileURLToPath(u)), `worker ${u}`);
  for (const [name, u] of Object.entries(BUILTIN_LISTS)) {
    assert.ok(embedded.has(fileURLToPath(u)), `filter list ${name}`);
  }
  // Every built-in list file in the folder is one of BUILTIN_LISTS (none forgotten).
  const lists = [...Deno.readDirSync(new URL("src/filter/lists/", ROOT))]
    .filter((e) => e.name.endsWith(".txt"))
    .map((e) => `src/filter/lists/${e.name}`);
  for (const l of lists) assert.ok(embeddedRelative().includes(l), l);

  // The compiled graph: main.ts (with its dynamic imports) and each worker entry's own graph.
  const graph = new Set<string>();
  for (const entry of [MAIN, ...WORKER_ENTRIES.map((u) => fileURLToPath(u))]) {
    for (const m of await moduleGraph(entry)) graph.add(m);
  }
  const dashboardUi = new URL("src/dashboard/assets/embedded.ts", ROOT).href;
  assert.ok(graph.has(dashboardUi), "the dashboard UI is compiled in as a module");
  let found = 0;
  for (const spec of graph) {
    const src = await Deno.readTextFile(new URL(spec));
    assert.doesNotMatch(
      src,
      /import\.meta\.(dirname|filename)/,
      `${spec}: import.meta.dirname/filename point outside a compiled binary's file system`,
    );
    for (const m of src.matchAll(/new URL\(\s*(["'`])([^"'`]+)\1\s*,\s*import\.meta\.url\s*\)/g)) {
      found++;
      const target = new URL(m[2], spec);
      if (target.href.endsWith("/")) {
        assert.fail(`${spec} reads the folder ${m[2]} at run time; embed its files one by one`);
      }
      assert.ok(
        embedded.has(fileURLToPath(target)) || graph.has(target.href),
        `${spec} opens ${m[2]} at run time, but scripts/embedded.ts does not embed it`,
      );
    }
  }
  assert.ok(found >= WORKER_ENTRIES.length + Object.keys(BUILTIN_LISTS).length, `${found} URLs`);
});

Deno.test("proxy --version prints the version, Deno/V8/TypeScript versions and the target", async () => {
  for (const flag of ["--version", "-V"]) {
    const r = await proxyCli(flag);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      `proxy ${VERSION}\ndeno ${Deno.version.deno}\nv8 ${Deno.version.v8}\n` +
        `typescript ${Deno.version.typescript}\ntarget ${Deno.build.target}\n`,
    );
  }
});

Deno.test("proxy --help and every subcommand's --help exit 0 with a usage", async () => {
  const top = await proxyCli("--help");
  assert.equal(top.code, 0, top.stderr);
  assert.match(top.stdout, new RegExp(`^proxy ${VERSION.replaceAll(".", "\\.")} — `));
  for (const section of ["USAGE", "EXAMPLES"]) {
    assert.match(top.stdout, new RegExp(`^${section}$`, "m"));
  }
  for (const sub of ["serve", "dashboard", "backend", "loadtest", "--version"]) {
    assert.match(top.stdout, new RegExp(`^  proxy (\\[)?${sub}`, "m"), sub);
  }
  const subs = await Promise.all(
    ["serve", "dashboard", "backend", "loadtest"].map(async (sub) => ({
      sub,
      r: await proxyCli(sub, "--help"),
    })),
  );
  for (const { sub, r } of subs) {
    assert.equal(r.code, 0, `${sub} --help: ${r.stderr}`);
    assert.match(r.stdout, /usage/i, `${sub} --help prints a usage`);
    assert.match(r.stdout, new RegExp(`proxy ${sub}`), `${sub} --help names the command`);
  }
  const serve = subs.find((s) => s.sub === "serve")!.r.stdout;
  for (const s of ["PORT", "BACKEND_SERVERS", "REDIS_URL", "SIGHUP"]) {
    assert.ok(serve.includes(s), s);
  }

  const bad = await proxyCli("frobnicate");
  assert.equal(bad.code, 2);
  assert.equal(bad.stdout, "");
  assert.equal(bad.stderr.trim(), 'proxy: unknown subcommand "frobnicate" (see proxy --help)');
});

Deno.test("compile refuses a runtime that is not denort, in one line, and leaves no binary", async () => {
  const dir = await Deno.makeTempDir({ prefix: "proxy-compile-test-" });
  try {
    const missing = await compile({ output: `${dir}/proxy`, denortBin: `${dir}/no-such-denort` });
    assert.equal(missing.ok, false);
    assert.equal(missing.error!.split("\n").length, 1);
    assert.match(missing.error!, /no-such-denort was not usable .*denort \d/);
    // The deno CLI as DENORT_BIN makes `deno compile` succeed, but the result is a Deno REPL,
    // not the proxy: the smoke run after compiling catches it.
    const cli = await compile({ output: `${dir}/proxy`, denortBin: Deno.execPath() });
    assert.equal(cli.ok, false, "a binary built on the deno CLI must not count as built");
    assert.equal(cli.error!.split("\n").length, 1);
    assert.match(cli.error!, /does not run as proxy/);
    assert.throws(() => Deno.statSync(`${dir}/proxy`), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const DENORT = Deno.env.get("DENORT_BIN");
if (!DENORT) {
  console.warn(
    "release_test: DENORT_BIN is not set and denort cannot be downloaded here: the compile-and-run " +
      "test is skipped; the embedded-file list is checked above",
  );
}

Deno.test({
  name: "the compiled binary runs from an empty directory: proxy, lists, workers, dashboard",
  ignore: ignoreUnless(
    "compiled binary",
    Boolean(DENORT),
    "no denort runtime (set DENORT_BIN; the release workflow downloads it)",
  ),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "proxy-compiled-" });
    try {
      const res = await compile({ output: `${dir}/proxy`, denortBin: DENORT });
      assert.ok(res.ok, res.error);
      const archive = `${dir}/${archiveName(VERSION, Deno.build.target)}`;
      await Deno.writeFile(
        archive,
        await packTarget(VERSION, Deno.build.target, await Deno.readFile(res.output)),
      );
      const failed = await smoke(archive, { log: () => {} });
      assert.deepEqual(failed, []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("archives: one folder with the executable binary and the docs; SHA256SUMS checks", async () => {
  const dir = await Deno.makeTempDir({ prefix: "proxy-archive-" });
  try {
    const binary = new TextEncoder().encode("#!/bin/sh\necho binary-ran\n");
    const linux = "x86_64-unknown-linux-gnu";
    const windows = "x86_64-pc-windows-msvc";
    assert.equal(archiveName("1.2.3", linux), "proxy-1.2.3-x86_64-unknown-linux-gnu.tar.gz");
    assert.equal(archiveName("1.2.3", windows), "proxy-1.2.3-x86_64-pc-windows-msvc.zip");
    assert.equal(binaryPath("out/proxy", windows), "out/proxy.exe");
    assert.equal(binaryPath("out/proxy", linux), "out/proxy");
    assert.equal(TARGETS.length, 5);

    const tgz = await packTarget(VERSION, linux, binary);
    const zip = await packTarget(VERSION, windows, binary);
    const tgzName = archiveName(VERSION, linux);
    const zipName = archiveName(VERSION, windows);
    await Deno.writeFile(`${dir}/${tgzName}`, tgz);
    await Deno.writeFile(`${dir}/${zipName}`, zip);

    // tar.gz: unpacked by the system tar, the binary keeps its executable bit and runs.
    const untar = await new Deno.Command("tar", { args: ["xzf", tgzName], cwd: dir }).output();
    assert.ok(untar.success, dec.decode(untar.stderr));
    const base = `${dir}/proxy-${VERSION}-${linux}`;
    assert.equal(Deno.statSync(`${base}/proxy`).mode! & 0o777, 0o755);
    const ran = await new Deno.Command(`${base}/proxy`).output();
    assert.equal(dec.decode(ran.stdout), "binary-ran\n");
    for (const doc of DOCS) {
      assert.deepEqual(
        await Deno.readFile(`${base}/${doc}`),
        await Deno.readFile(new URL(doc, ROOT)),
        doc,
      );
    }

    // zip: read back entry by entry (local headers), inflated and CRC-checked.
    const entries = await readZip(zip);
    assert.deepEqual(
      [...entries.keys()],
      [
        `proxy-${VERSION}-${windows}/proxy.exe`,
        ...DOCS.map((d) => `proxy-${VERSION}-${windows}/${d}`),
      ],
    );
    assert.deepEqual(entries.get(`proxy-${VERSION}-${windows}/proxy.exe`), binary);

    // SHA256SUMS in the format `sha256sum -c` reads.
    const sums = sha256sums([
      { name: tgzName, hex: await sha256(tgz) },
      { name: zipName, hex: await sha256(zip) },
    ]);
    await Deno.writeTextFile(`${dir}/SHA256SUMS`, sums);
    const check = await new Deno.Command("sha256sum", { args: ["-c", "SHA256SUMS"], cwd: dir })
      .output();
    assert.ok(check.success, dec.decode(check.stdout) + dec.decode(check.stderr));
    assert.equal(dec.decode(check.stdout), `${tgzName}: OK\n${zipName}: OK\n`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Entries of a zip written by scripts/release.ts (deflate, sizes in the local headers). */
async function readZip(zip: Uint8Array): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  const view = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  let off = 0;
  while (view.getUint32(off, true) === 0x04034b50) {
    assert.equal(view.getUint16(off + 8, true), 8, "deflate");
    const crc = view.getUint32(off + 14, true);
    const packed = view.getUint32(off + 18, true);
    const size = view.getUint32(off + 22, true);
    const nameLen = view.getUint16(off + 26, true);
    const extra = view.getUint16(off + 28, true);
    const name = dec.decode(zip.subarray(off + 30, off + 30 + nameLen));
    const start = off + 30 + nameLen + extra;
    const body = new Blob([zip.slice(start, start + packed)]).stream()
      .pipeThrough(new DecompressionStream("deflate-raw"));
    const data = new Uint8Array(await new Response(body).arrayBuffer());
    assert.equal(data.length, size, name);
    assert.equal(crc32(data), crc, name);
    out.set(name, data);
    off = start + packed;
  }
  assert.equal(view.getUint32(off, true), 0x02014b50, "central directory follows the entries");
  return out;
}

Deno.test("make release without runtimes: one line per target, non-zero exit, nothing pretended", async () => {
  const dir = await Deno.makeTempDir({ prefix: "proxy-release-" });
  try {
    const targets = ["x86_64-pc-windows-msvc", "aarch64-apple-darwin"];
    const env: Record<string, string> = { NO_COLOR: "1" };
    for (const t of targets) env[`DENORT_BIN_${t.toUpperCase().replaceAll("-", "_")}`] = `${dir}/x`;
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        fileURLToPath(new URL("scripts/release.ts", ROOT)),
        ...targets.flatMap((t) => ["--target", t]),
        "--out-dir",
        dir,
      ],
      env,
      stdin: "null",
    }).output();
    assert.equal(out.code, 1);
    const lines = dec.decode(out.stderr).trim().split("\n");
    assert.equal(lines.length, targets.length + 1, lines.join("\n"));
    for (const [i, t] of targets.entries()) assert.match(lines[i], new RegExp(`^compile ${t}: `));
    assert.match(lines.at(-1)!, /^release: 2 of 2 targets not built/);
    assert.equal(Deno.readTextFileSync(`${dir}/SHA256SUMS`), "");
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["SHA256SUMS"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("release builds every target into named archives and SHA256SUMS covers them", async () => {
  const dir = await Deno.makeTempDir({ prefix: "proxy-release-all-" });
  try {
    // The compile step stands in for `deno compile` (no runtime here): it writes a small
    // executable where the real one would, so the packing and checksums are what is tested.
    const built: string[] = [];
    const build = async (o: CompileOptions) => {
      const output = binaryPath(o.output!, o.target!);
      await Deno.writeTextFile(output, `#!/bin/sh\necho ${o.target}\n`, { mode: 0o755 });
      built.push(o.target!);
      return { ok: true, output, target: o.target! };
    };
    const log: string[] = [];
    const res = await release(TARGETS, dir, {
      build,
      log: (l) => log.push(l),
      warn: (l) => log.push(l),
    });
    assert.deepEqual(built, [...TARGETS]);
    assert.deepEqual(res.failures, []);
    assert.deepEqual(res.built, TARGETS.map((t) => archiveName(VERSION, t)));
    assert.equal(log.length, TARGETS.length);
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(names, [...res.built, "SHA256SUMS"].sort());
    const check = await new Deno.Command("sha256sum", { args: ["-c", "SHA256SUMS"], cwd: dir })
      .output();
    assert.ok(check.success, dec.decode(check.stdout) + dec.decode(check.stderr));
    assert.equal(dec.decode(check.stdout).trim().split("\n").length, TARGETS.length);
    // The Linux archive's binary is the one built for its target.
    const untar = await new Deno.Command("tar", {
      args: ["xzf", archiveName(VERSION, "aarch64-unknown-linux-gnu")],
      cwd: dir,
    }).output();
    assert.ok(untar.success);
    assert.equal(
      Deno.readTextFileSync(`${dir}/proxy-${VERSION}-aarch64-unknown-linux-gnu/proxy`),
      "#!/bin/sh\necho aarch64-unknown-linux-gnu\n",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("release smoke test passes on a working archive and fails on a broken one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "proxy-smoke-test-" });
  try {
    const target = Deno.build.target;
    // A release-shaped archive whose `proxy` runs this source tree (no compiled binary here).
    const script = `#!/bin/sh\nexec "${Deno.execPath()}" run -A --config "${
      fileURLToPath(new URL("deno.json", ROOT))
    }" "${MAIN}" "$@"\n`;
    const good = `${dir}/good.tar.gz`;
    await Deno.writeFile(
      good,
      await packTarget(VERSION, target, new TextEncoder().encode(script)),
    );
    const lines: string[] = [];
    assert.deepEqual(await smoke(good, { log: (l) => lines.push(l) }), [], lines.join("\n"));
    assert.equal(lines.length, 6);
    // A binary that prints the wrong thing and serves nothing fails, and says why.
    const bad = `${dir}/bad.tar.gz`;
    await Deno.writeFile(
      bad,
      await packTarget(VERSION, target, new TextEncoder().encode("#!/bin/sh\necho nope\n")),
    );
    const failed = await smoke(bad, { log: () => {} });
    assert.ok(failed.length >= 2, failed.join("\n"));
    assert.match(failed[0], /--version/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
