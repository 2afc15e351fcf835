/**
 * The files `deno compile` must embed besides the module graph: worker entry
 * points, filter lists and dashboard assets. Read at run time through
 * `import.meta.url`-relative paths, they exist in the binary only if listed
 * here (passed as `--include`).
 *
 * @module
 */
import { WORKER_ENTRIES } from "../src/workers/mod.ts";

const ROOT = new URL("../", import.meta.url);

function filesUnder(dir: URL, accept: (name: string) => boolean): string[] {
  const out: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch {
    return out;
  }
  for (const e of entries) {
    const url = new URL(e.name + (e.isDirectory ? "/" : ""), dir);
    if (e.isDirectory) out.push(...filesUnder(url, accept));
    else if (e.isFile && accept(e.name)) out.push(url.pathname);
  }
  return out;
}

/** Absolute paths of every file to pass to `deno compile --include`. */
export function embeddedFiles(): string[] {
  const files = [
    ...WORKER_ENTRIES.map((u) => u.pathname),
    ...filesUnder(new URL("src/filter/lists/", ROOT), (n) => n.endsWith(".txt")),
    ...filesUnder(new URL("src/dashboard/assets/", ROOT), () => true),
  ];
  return [...new Set(files)].sort();
}

/** The same paths relative to the project root, for messages and tests. */
export function embeddedRelative(): string[] {
  return embeddedFiles().map((p) => p.slice(ROOT.pathname.length));
}
