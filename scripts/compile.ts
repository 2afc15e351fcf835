/**
 * `make build` / `deno task compile`: `deno compile` to ./proxy with every
 * worker entry and filter list embedded (see scripts/embedded.ts).
 *
 * `deno compile` needs the `denort` runtime of this Deno version for the
 * target. It honours DENORT_BIN (a denort binary from the Deno release archive
 * `denort-<target>.zip`); without it Deno downloads the runtime, which fails on
 * machines without internet access: then this script stops with one line
 * saying what to set. A binary built for this machine is run once
 * (`--version`) before it is reported as built, so a wrong DENORT_BIN (for
 * example the `deno` CLI itself, which yields a binary that only starts a
 * REPL) fails here instead of in a user's hands.
 *
 * Usage: deno run -A scripts/compile.ts [--target TRIPLE] [--output PATH]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { resolve } from "node:path";
import { VERSION } from "../src/version.ts";
import { embeddedFiles } from "./embedded.ts";

/** Every target a release is built for (`deno compile --target`). */
export const TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
] as const;

export interface CompileOptions {
  /** Target triple; default this machine's. */
  target?: string;
  /** Output path; `.exe` is appended for Windows targets when missing. Default `proxy`. */
  output?: string;
  /** The denort runtime to build on; default `DENORT_BIN` from the environment. */
  denortBin?: string;
  /** The setting named in the error when no runtime could be had; default `DENORT_BIN`. */
  denortSetting?: string;
}

export interface CompileResult {
  ok: boolean;
  /** Path of the binary written (with `.exe` for Windows). */
  output: string;
  target: string;
  /** One line for the user when not ok. */
  error?: string;
}

const ROOT = new URL("../", import.meta.url);

/** The binary's path for a target: Windows binaries end in `.exe`. */
export function binaryPath(output: string, target: string): string {
  return target.includes("windows") && !output.endsWith(".exe") ? `${output}.exe` : output;
}

/** Runs `deno compile` for one target and checks the result where it can run here. */
export async function compile(options: CompileOptions = {}): Promise<CompileResult> {
  const target = options.target ?? Deno.build.target;
  const output = binaryPath(options.output ?? "proxy", target);
  const denortBin = options.denortBin ?? Deno.env.get("DENORT_BIN");
  const args = [
    "compile",
    "--allow-all",
    "--no-check",
    "--config",
    fileURLToPath(new URL("deno.json", ROOT)),
    "--output",
    output,
    "--target",
    target,
  ];
  for (const file of embeddedFiles()) args.push("--include", file);
  args.push(fileURLToPath(new URL("main.ts", ROOT)));
  const env: Record<string, string> = { NO_COLOR: "1" };
  if (denortBin) env.DENORT_BIN = denortBin;
  const cmd = new Deno.Command(Deno.execPath(), { args, env, stdout: "piped", stderr: "piped" });
  const out = await cmd.output();
  const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
  if (out.code !== 0) {
    const runtime = `denort ${Deno.version.deno} for ${target}`;
    const denortMissing = /denort|error sending request|dns error/i.test(text);
    const error = !denortMissing
      ? `compile ${target}: deno compile failed: ${
        text.trim().split("\n").filter(Boolean).slice(-3).join(" | ")
      }`
      : denortBin
      ? `compile ${target}: the runtime ${denortBin} was not usable (it must be ${runtime})`
      : `compile ${target}: no runtime: deno compile could not download ${runtime}; set ${
        options.denortSetting ?? "DENORT_BIN"
      } to the denort binary from denort-${target}.zip of the Deno ${Deno.version.deno} release`;
    return { ok: false, output, target, error };
  }
  if (target === Deno.build.target) {
    const problem = await smokeTest(output);
    if (problem) {
      await Deno.remove(output).catch(() => {});
      const from = denortBin ?? "the downloaded runtime";
      return {
        ok: false,
        output,
        target,
        error:
          `compile ${target}: the binary built on ${from} does not run as proxy (${problem}); DENORT_BIN must be denort ${Deno.version.deno}, not the deno CLI`,
      };
    }
  }
  return { ok: true, output, target };
}

/** Runs `<binary> --version` from an empty directory; undefined when it printed this version. */
async function smokeTest(binary: string): Promise<string | undefined> {
  const dir = await Deno.makeTempDir({ prefix: "proxy-compile-" });
  try {
    const child = new Deno.Command(resolve(binary), {
      args: ["--version"],
      cwd: dir,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    const res = await child.output();
    clearTimeout(timer);
    const first = new TextDecoder().decode(res.stdout).split("\n")[0];
    return first === `proxy ${VERSION}` ? undefined : `--version printed "${first.slice(0, 60)}"`;
  } catch (err) {
    return `it could not be started: ${err instanceof Error ? err.message : err}`;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { target: { type: "string" }, output: { type: "string" } },
  });
  const result = await compile({ target: values.target, output: values.output });
  if (!result.ok) {
    console.error(result.error);
    Deno.exit(1);
  }
  console.log(
    `compiled ${result.output} (${result.target}) with ${embeddedFiles().length} embedded files`,
  );
}
