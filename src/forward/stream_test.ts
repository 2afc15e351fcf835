import assert from "node:assert/strict";
import { type Report, SIZE } from "./testdata/stream_memory.ts";

/**
 * 256 MB per transfer, growth limit 128 MB: a quiet run grows 40–70 MB (garbage awaiting GC),
 * and buffering a transfer would add at least its 256 MB. The transfers run in a child process (testdata/stream_memory.ts) so that its RSS is theirs
 * alone: under `deno test --parallel` the other test modules share this process.
 */
const MAX_GROWTH = 128 * 1024 * 1024;
const SCRIPT = new URL("./testdata/stream_memory.ts", import.meta.url);

async function measure(direction: "down" | "up"): Promise<Report> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SCRIPT.pathname, direction],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, `stream_memory.ts ${direction} failed: ${stderr}`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

function assertFlat(report: Report): void {
  for (const t of report.transfers) {
    assert.equal(t.bytes, SIZE, `${t.name}: bytes delivered`);
    assert.ok(
      t.growth < MAX_GROWTH,
      `${t.name}: RSS grew by ${(t.growth / 1048576).toFixed(1)} MB`,
    );
  }
}

Deno.test("256 MB streams down with flat memory (Content-Length and chunked)", async () => {
  const report = await measure("down");
  assert.deepEqual(report.transfers.map((t) => t.name), ["content-length", "chunked"]);
  assertFlat(report);
});

Deno.test("256 MB streams up with flat memory (Content-Length and chunked)", async () => {
  const report = await measure("up");
  const [withLength, chunked] = report.transfers;
  assert.equal(withLength.contentLength, String(SIZE));
  assert.equal(chunked.transferEncoding, "chunked");
  assertFlat(report);
  assert.equal(report.connectionsOpened, 1, "a fully sent upload keeps the connection");
});
