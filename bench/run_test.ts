import assert from "node:assert/strict";
import { loadScenarios } from "./run.ts";

Deno.test("loadScenarios finds every scenario file and reports broken ones", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/a-const.ts`,
      `export const scenario = { name: "a", description: "A", run: () => ({ rows: [], ratios: [] }) };`,
    );
    await Deno.writeTextFile(
      `${dir}/b-module.ts`,
      `export const name = "b"; export const description = "B";\n` +
        `export function run() { return { rows: [], ratios: [] }; }`,
    );
    await Deno.writeTextFile(`${dir}/c-broken.ts`, `import "./does-not-exist.ts";`);
    await Deno.writeTextFile(`${dir}/d-empty.ts`, `export const x = 1;`);
    await Deno.writeTextFile(`${dir}/e_test.ts`, `throw new Error("tests are not scenarios");`);
    const { scenarios, broken } = await loadScenarios(dir);
    assert.deepEqual(scenarios.map((s) => s.name), ["a", "b"]);
    assert.equal(broken.length, 2);
    assert.match(broken[0], /c-broken\.ts/);
    assert.match(broken[1], /d-empty\.ts exports no scenario/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the shipped scenarios all load", async () => {
  const { scenarios, broken } = await loadScenarios();
  assert.deepEqual(broken, []);
  for (const name of ["reverse", "cache-hit", "forward"]) {
    assert.ok(scenarios.some((s) => s.name === name), name);
  }
});
