import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { EventHub } from "./events.ts";
import { ProxySupervisor } from "./supervisor.ts";

Deno.test("a flood of output reaches browsers in a few batches, the newest lines kept", async () => {
  const hub = new EventHub();
  const batches: { lines: { text: string }[]; skipped: number }[] = [];
  const states: string[] = [];
  hub.subscribe((e) => {
    if (e.event === "logs-append") batches.push(e.data as (typeof batches)[number]);
    if (e.event === "status") states.push((e.data as { state: string }).state);
  });
  const sup = new ProxySupervisor({
    // A real child that writes 5000 lines as fast as it can, then exits.
    command: {
      cmd: Deno.execPath(),
      args: [
        "eval",
        "let s = ''; for (let i = 0; i < 5000; i++) s += `line ${i}\\n`; console.log(s);",
      ],
    },
    envFile: "/nonexistent/.env",
    hub,
    logLines: 1000,
  });
  try {
    await sup.start();
    const deadline = Date.now() + 60_000;
    while (sup.status().state !== "stopped" && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assertEquals(sup.status().state, "stopped");
    const sent = batches.flatMap((b) => b.lines);
    const skipped = batches.reduce((n, b) => n + b.skipped, 0);
    assert(batches.length < 200, `${batches.length} events for 5000 lines`);
    assert(skipped > 0, "a flood is thinned, not queued without bound");
    const kept = sup.logs();
    // Every line was either sent or counted as skipped.
    assertEquals(sent.length + skipped, kept.at(-1)!.seq);
    assertEquals(kept.length, 1000);
    assert(kept.some((l) => l.text === "line 4999"), "the newest line is kept");
    assert(!kept.some((l) => l.text === "line 0"), "the oldest ones are dropped");
    assertEquals(sup.status().exit?.expected, false);
    assertEquals(states[0], "starting");
    assertEquals(states.at(-1), "stopped");
  } finally {
    await sup.close();
    hub.close();
  }
});
