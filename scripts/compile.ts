/**
 * `make build` / `deno task compile`: `deno compile` to ./proxy with every
 * worker, filter list and dashboard asset embedded.
 *
 * `deno compile` needs the `denort` runtime of this Deno version. It honours
 * DENORT_BIN (a denort binary from the release archive `denort-<target>.zip`);
 * without it Deno downloads the runtime, which fails on machines without
 * internet access: then this script stops with one line saying what to set.
 *
 * Usage: deno run -A scripts/compile.ts [--target TRIPLE] [--output PATH]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { embeddedFiles } from "./embedded.ts";

export interface CompileResult {
  ok: boolean;
  output: string;
  /** One line for the user when not ok. */
  error?: string;
}

export async function compile(target?: string, output = "proxy"): Promise<CompileResult> {
  const args = ["compile", "--allow-all", "--no-check", "--output", output];
  if (target) args.push("--target", target);
  for (const file of embeddedFiles()) args.push("--include", file);
  args.push(new URL("../main.ts", import.meta.url).pathname);
  const out = await new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
  if (out.code === 0) return { ok: true, output };
  const denortMissing = /denort|dl\.deno\.land|error sending request|dns error/i.test(text);
  const error = denortMissing
    ? Deno.env.get("DENORT_BIN")
      ? `compile: the runtime at DENORT_BIN=${
        Deno.env.get("DENORT_BIN")
      } was not usable (it must be denort ${Deno.version.deno} for ${target ?? Deno.build.target})`
      : `compile: deno compile could not download its runtime (denort ${Deno.version.deno}); set DENORT_BIN to a denort binary from denort-${
        target ?? Deno.build.target
      }.zip of the Deno ${Deno.version.deno} release`
    : `compile: deno compile failed: ${
      text.trim().split("\n").filter(Boolean).slice(-3).join(" | ")
    }`;
  return { ok: false, output, error };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { target: { type: "string" }, output: { type: "string" } },
  });
  const result = await compile(values.target, values.output ?? "proxy");
  if (!result.ok) {
    console.error(result.error);
    Deno.exit(1);
  }
  console.log(`compiled ${result.output} with ${embeddedFiles().length} embedded files`);
}
