import assert from "node:assert/strict";
import { HeadView, serialisedUrl } from "./request_view.ts";
import { HeadTemplate, writeResponse } from "./response.ts";
import type { RequestHead } from "./head.ts";

const decoder = new TextDecoder("latin1");

/** What writeResponse puts on the wire for `res`. */
async function written(res: Response, head: boolean, keepAlive: boolean): Promise<string> {
  let out = "";
  await writeResponse(
    {
      write: (p) => {
        out += decoder.decode(p);
        return Promise.resolve(true);
      },
    },
    res,
    { head, minor: 1, keepAlive },
  );
  return out;
}

const CASES: [string, [string, string][]][] = [
  ["typical", [
    ["cache-control", "public, max-age=60"],
    ["content-type", "text/plain"],
    ["date", "Thu, 03 Dec 2026 11:00:00 GMT"],
    ["content-length", "5"],
    ["x-cache", "HIT"],
  ]],
  ["fields around both slots, repeats, a stored request id, hop-by-hop", [
    ["accept-ranges", "bytes"],
    ["link", "</a>"],
    ["link", "</b>"],
    ["set-cookie", "a=1"],
    ["set-cookie", "b=2"],
    ["x-request-id", "stored"],
    ["x-zz", "last"],
    ["connection", "close"],
    ["keep-alive", "timeout=5"],
    ["date", "Thu, 03 Dec 2026 11:00:00 GMT"],
    ["content-length", "5"],
  ]],
  ["no Date", [["content-type", "text/plain"], ["content-length", "5"]]],
];

Deno.test("HeadTemplate renders what writeResponse writes for the same response with Age and X-Request-Id", async () => {
  for (const [name, fields] of CASES) {
    for (const head of [false, true]) {
      for (const keepAlive of [true, false]) {
        const headers = new Headers(fields);
        const template = HeadTemplate.of(200, headers)!;
        // A byte body, as a cache entry's: a string would add a Content-Type.
        const body = new TextEncoder().encode("hello");
        const res = new Response(body, { headers: new Headers(fields) });
        res.headers.append("age", "7");
        res.headers.set("x-request-id", "id-1");
        const expected = await written(res, head, keepAlive);
        const rendered = template.render("7", "id-1", keepAlive) + (head ? "" : "hello");
        assert.equal(rendered, expected, `${name}, head ${head}, keep-alive ${keepAlive}`);
      }
    }
  }
  assert.equal(HeadTemplate.of(200, new Headers({ age: "3" })), undefined);
});

Deno.test("HeadView reads a parsed head as a Request built from it would", () => {
  const fields: [string, string][] = [
    ["Host", "example.com"],
    ["Accept", "a"],
    ["accept", "b"],
    ["X-Forwarded-For", "10.0.0.1"],
    ["Cookie", "c=1"],
  ];
  const head = { method: "GET", headers: fields } as unknown as RequestHead;
  const raw = "http://Example.COM:80/a/../b?q='x'";
  const view = new HeadView(head, serialisedUrl(raw)!);
  const req = new Request(raw, { headers: fields });
  assert.equal(view.url, req.url);
  for (const n of ["host", "accept", "x-forwarded-for", "cookie", "range"]) {
    assert.equal(view.headers.get(n), req.headers.get(n), n);
    assert.equal(view.headers.has(n), req.headers.has(n), n);
  }
  const seen = (h: { forEach(cb: (v: string, k: string) => void): void }) => {
    const out: string[] = [];
    h.forEach((v, k) => out.push(`${k}: ${v}`));
    return out;
  };
  assert.deepEqual(seen(view.headers), seen(req.headers));
  assert.equal(view.body, null);
  assert.equal(serialisedUrl("http://exa mple/"), undefined);
  // Past the memo's length bound: parsed each time, the same answer.
  const long = "http://h/" + "a/../".repeat(200) + "x?%7e";
  assert.equal(serialisedUrl(long), new Request(long).url);
  assert.equal(serialisedUrl(long), serialisedUrl(long));
});
