/**
 * Abuse suite: hostile and malformed requests over raw TCP against a real
 * proxy process (forward + reverse on one port, proxy auth on). Every case
 * must get a clear refusal (or a harmless answer) and, after all of them, the
 * proxy must still serve normal requests.
 */
import assert from "node:assert/strict";
import bcrypt from "bcryptjs";
import { startBackend } from "../src/backend/mod.ts";
import { startProxy, type TestProxy } from "./helpers/proxy.ts";
import { startTestBackend } from "./helpers/backend.ts";
import { freePort, waitForPort } from "./helpers/ports.ts";
import { openRaw, rawRequest, type RawResponse } from "./helpers/rawhttp.ts";
import { ignoreUnless } from "./helpers/ignore.ts";
import { startRecordingBackend } from "./helpers/recorder.ts";

const CRLF = "\r\n";
const AUTH = `Proxy-Authorization: Basic ${btoa("alice:wonderland")}`;

interface Case {
  readonly name: string;
  /** Request bytes; `{B}` is replaced by the reverse backend's port, `{F}` by the allowed forward origin's. */
  readonly send: string | Uint8Array;
  /** Acceptable statuses; 0 means "closed without an answer". */
  readonly expect: readonly number[];
  /** Extra check on the answer. */
  readonly check?: (r: RawResponse) => void;
}

const get = (target: string, extra = "") =>
  `GET ${target} HTTP/1.1${CRLF}Host: x${CRLF}${extra}${CRLF}`;
const fwd = (url: string, extra = "") => {
  const host = url.replace(/^[a-z]+:\/\//, "").split("/")[0].replace(/^.*@/, "");
  return `GET ${url} HTTP/1.1${CRLF}Host: ${host}${CRLF}${AUTH}${CRLF}${extra}${CRLF}`;
};
const connect = (authority: string, extra = `${AUTH}${CRLF}`) =>
  `CONNECT ${authority} HTTP/1.1${CRLF}Host: ${authority}${CRLF}${extra}${CRLF}`;
const mentions = (re: RegExp) => (r: RawResponse) => assert.match(r.body, re);
const challenge = (r: RawResponse) =>
  assert.equal(r.headers["proxy-authenticate"], 'Basic realm="proxy", charset="UTF-8"');

const SMUGGLING: Case[] = [
  {
    name: "CL.TE: Content-Length and Transfer-Encoding together",
    send:
      `POST /json HTTP/1.1${CRLF}Host: x${CRLF}Content-Length: 6${CRLF}Transfer-Encoding: chunked${CRLF}${CRLF}0${CRLF}${CRLF}G`,
    expect: [400],
  },
  {
    name: "TE.CL: chunked body hiding a second request",
    send:
      `POST /json HTTP/1.1${CRLF}Host: x${CRLF}Transfer-Encoding: chunked${CRLF}Content-Length: 3${CRLF}${CRLF}` +
      `8${CRLF}SMUGGLED${CRLF}0${CRLF}${CRLF}`,
    expect: [400],
  },
  {
    name: "duplicate Content-Length with different values",
    send:
      `POST /json HTTP/1.1${CRLF}Host: x${CRLF}Content-Length: 5${CRLF}Content-Length: 6${CRLF}${CRLF}hello!`,
    expect: [400],
  },
  {
    name: "Content-Length list with different values",
    send: `POST /json HTTP/1.1${CRLF}Host: x${CRLF}Content-Length: 5, 6${CRLF}${CRLF}hello!`,
    expect: [400],
  },
  {
    name: "negative Content-Length",
    send: `POST /json HTTP/1.1${CRLF}Host: x${CRLF}Content-Length: -1${CRLF}${CRLF}`,
    expect: [400],
  },
  {
    name: "Content-Length with a plus sign",
    send: `POST /json HTTP/1.1${CRLF}Host: x${CRLF}Content-Length: +5${CRLF}${CRLF}hello`,
    expect: [400],
  },
  {
    name: "obfuscated Transfer-Encoding (xchunked)",
    send:
      `POST /json HTTP/1.1${CRLF}Host: x${CRLF}Transfer-Encoding: xchunked${CRLF}${CRLF}0${CRLF}${CRLF}`,
    expect: [400, 501],
  },
  {
    name: "Transfer-Encoding with a space before the colon",
    send:
      `POST /json HTTP/1.1${CRLF}Host: x${CRLF}Transfer-Encoding : chunked${CRLF}Content-Length: 4${CRLF}${CRLF}0${CRLF}${CRLF}`,
    expect: [400],
  },
  {
    name: "two Transfer-Encoding headers, the last not chunked",
    send:
      `POST /json HTTP/1.1${CRLF}Host: x${CRLF}Transfer-Encoding: chunked${CRLF}Transfer-Encoding: identity${CRLF}${CRLF}0${CRLF}${CRLF}`,
    expect: [400, 501],
  },
  {
    name: "obs-fold continuation line",
    send: `GET /json HTTP/1.1${CRLF}Host: x${CRLF}X-Folded: a${CRLF} b${CRLF}${CRLF}`,
    expect: [400],
  },
  {
    name: "obs-fold hiding Transfer-Encoding",
    send:
      `POST /json HTTP/1.1${CRLF}Host: x${CRLF}Content-Length: 5${CRLF}X-A: b${CRLF} Transfer-Encoding: chunked${CRLF}${CRLF}0${CRLF}${CRLF}`,
    expect: [400],
  },
  {
    name: "bare CR inside a header value",
    send: `GET /json HTTP/1.1${CRLF}Host: x${CRLF}X-A: a\rb${CRLF}${CRLF}`,
    expect: [400],
  },
  {
    name: "NUL byte in a header value",
    send: `GET /json HTTP/1.1${CRLF}Host: x${CRLF}X-A: a\x00b${CRLF}${CRLF}`,
    expect: [400],
  },
  {
    name: "invalid chunk size",
    send:
      `POST /json HTTP/1.1${CRLF}Host: x${CRLF}Transfer-Encoding: chunked${CRLF}${CRLF}zz${CRLF}hello${CRLF}0${CRLF}${CRLF}`,
    expect: [400],
  },
  {
    name: "chunk size overflowing 64 bits",
    send:
      `POST /json HTTP/1.1${CRLF}Host: x${CRLF}Transfer-Encoding: chunked${CRLF}${CRLF}fffffffffffffffffff${CRLF}a${CRLF}`,
    expect: [400],
  },
  {
    name: "header name containing a space",
    send: `GET /json HTTP/1.1${CRLF}Host: x${CRLF}Bad Header: 1${CRLF}${CRLF}`,
    expect: [400],
  },
  {
    name: "empty header name",
    send: `GET /json HTTP/1.1${CRLF}Host: x${CRLF}: value${CRLF}${CRLF}`,
    expect: [400],
  },
];

const SIZES: Case[] = [
  {
    name: "one 20 KiB header value",
    send: get("/json", `X-Big: ${"a".repeat(20 * 1024)}${CRLF}`),
    expect: [431],
  },
  {
    name: "200 header fields",
    send: get("/json", Array.from({ length: 200 }, (_, i) => `X-H${i}: v${CRLF}`).join("")),
    expect: [431],
    check: mentions(/MAX_HEADER_COUNT|Header Fields Too Large/i),
  },
  {
    name: "many small headers adding up past 16 KiB",
    send: get(
      "/json",
      Array.from({ length: 90 }, (_, i) => `X-H${i}: ${"b".repeat(200)}${CRLF}`).join(""),
    ),
    expect: [431],
  },
  {
    name: "a 20 KiB request-target",
    send: get(`/json?${"q".repeat(20 * 1024)}`),
    expect: [414, 431],
  },
  {
    name: "a 1 MiB header block sent in one go",
    send: get("/json", `X-Huge: ${"z".repeat(1024 * 1024)}${CRLF}`),
    expect: [431, 0],
  },
];

const REQUEST_LINES: Case[] = [
  { name: "method only", send: `GET${CRLF}${CRLF}`, expect: [400] },
  {
    name: "extra token after the version",
    send: `GET /json HTTP/1.1 extra${CRLF}Host: x${CRLF}${CRLF}`,
    expect: [400],
  },
  {
    name: "unknown HTTP version",
    send: `GET /json HTTP/9.9${CRLF}Host: x${CRLF}${CRLF}`,
    expect: [400, 505],
  },
  {
    name: "method with illegal characters",
    send: `G@T /json HTTP/1.1${CRLF}Host: x${CRLF}${CRLF}`,
    expect: [400],
  },
  {
    name: "TLS ClientHello sent to the plain-text port",
    send: new Uint8Array([
      0x16,
      0x03,
      0x01,
      0x02,
      0x00,
      0x01,
      0x00,
      0x01,
      0xfc,
      0x03,
      0x03,
      ...new Uint8Array(64),
    ]),
    expect: [400, 0],
  },
  { name: "request line of spaces", send: `   ${CRLF}Host: x${CRLF}${CRLF}`, expect: [400] },
  { name: "HTTP/1.1 without Host", send: `GET /json HTTP/1.1${CRLF}${CRLF}`, expect: [400] },
  {
    name: "two Host headers",
    send: `GET /json HTTP/1.1${CRLF}Host: a${CRLF}Host: b${CRLF}${CRLF}`,
    expect: [400],
  },
  {
    name: "request-target with a control character",
    send: `GET /a\x01b HTTP/1.1${CRLF}Host: x${CRLF}${CRLF}`,
    expect: [400],
  },
  {
    name: "lowercase method",
    send: `get /json HTTP/1.1${CRLF}Host: x${CRLF}${CRLF}`,
    expect: [400],
    check: mentions(/case-sensitive/),
  },
  {
    name: "unknown method",
    send: `FROB /json HTTP/1.1${CRLF}Host: x${CRLF}${CRLF}`,
    expect: [501],
  },
  {
    name: "a 10 KB method name",
    send: `${"M".repeat(10_000)} /json HTTP/1.1${CRLF}Host: x${CRLF}${CRLF}`,
    expect: [501],
  },
  { name: "TRACE", send: `TRACE /json HTTP/1.1${CRLF}Host: x${CRLF}${CRLF}`, expect: [405] },
  {
    name: "HTTP/0.9 request line: refused at once, not at HEADER_TIMEOUT",
    send: `GET /json${CRLF}`,
    expect: [400],
  },
  { name: "bare LF line ends", send: `GET /json HTTP/1.1\nHost: x\n\n`, expect: [400] },
  {
    name: "whitespace between the request line and the first header",
    send: `GET /json HTTP/1.1${CRLF} Host: x${CRLF}${CRLF}`,
    expect: [400],
  },
  {
    name: "Host header with a path in it",
    send: `GET /json HTTP/1.1${CRLF}Host: x/evil${CRLF}${CRLF}`,
    expect: [400],
  },
  {
    name: "request-target with a raw space",
    send: `GET /a b HTTP/1.1${CRLF}Host: x${CRLF}${CRLF}`,
    expect: [400],
  },
];

const URIS: Case[] = [
  {
    name: "absolute URI with an unclosed IPv6 bracket",
    send: `GET http://[::1/ HTTP/1.1${CRLF}Host: x${CRLF}${AUTH}${CRLF}${CRLF}`,
    expect: [400],
  },
  {
    name: "absolute URI without a host",
    send: `GET http:// HTTP/1.1${CRLF}Host: x${CRLF}${AUTH}${CRLF}${CRLF}`,
    expect: [400],
  },
  { name: "ftp scheme", send: fwd("ftp://example.com/file"), expect: [400] },
  {
    name: "file scheme",
    send: `GET file:///etc/passwd HTTP/1.1${CRLF}Host: x${CRLF}${AUTH}${CRLF}${CRLF}`,
    expect: [400],
  },
  {
    name: "port out of range",
    send: `GET http://example.com:99999/ HTTP/1.1${CRLF}Host: x${CRLF}${AUTH}${CRLF}${CRLF}`,
    expect: [400],
  },
  { name: "invalid percent-encoding", send: get("/%zz%"), expect: [400, 404] },
];

const SSRF: Case[] = [
  {
    name: "forward to 127.0.0.1",
    send: fwd("http://127.0.0.1:{B}/json"),
    expect: [403],
    check: mentions(/loopback/),
  },
  {
    name: "forward to localhost (resolves to loopback)",
    send: fwd("http://localhost:{B}/json"),
    expect: [403],
    check: mentions(/loopback/),
  },
  {
    name: "forward to localhost on a closed port: 403 too, so ports cannot be probed",
    send: fwd("http://localhost:9/"),
    expect: [403],
  },
  {
    name: "forward to the metadata address",
    send: fwd("http://169.254.169.254/latest/meta-data/"),
    expect: [403],
    check: mentions(/link-local/),
  },
  { name: "forward to [::1]", send: fwd("http://[::1]:{B}/json"), expect: [403] },
  {
    name: "forward to IPv4-mapped loopback",
    send: fwd("http://[::ffff:127.0.0.1]:{B}/json"),
    expect: [403],
  },
  { name: "forward to 0.0.0.0", send: fwd("http://0.0.0.0:{B}/json"), expect: [403] },
  {
    name: "forward to a private 10/8 address",
    send: fwd("http://10.0.0.1/"),
    expect: [403],
    check: mentions(/private/),
  },
  { name: "forward to 192.168/16", send: fwd("http://192.168.1.1/"), expect: [403] },
  {
    name: "forward to decimal 127.0.0.1 (2130706433)",
    send: fwd("http://2130706433:{B}/json"),
    expect: [403],
  },
  {
    name: "forward to hex 127.0.0.1 (0x7f000001)",
    send: fwd("http://0x7f000001:{B}/json"),
    expect: [403],
  },
  { name: "forward to short-form 127.1", send: fwd("http://127.1:{B}/json"), expect: [403] },
  { name: "forward to link-local IPv6", send: fwd("http://[fe80::1]/"), expect: [403] },
  { name: "forward to multicast", send: fwd("http://224.0.0.1/"), expect: [403] },
  {
    name: "forward to the carrier-grade NAT range",
    send: fwd("http://100.64.0.1/"),
    expect: [403],
  },
  {
    name: "forward with userinfo to loopback",
    send: fwd("http://user:pass@127.0.0.1:{B}/json"),
    expect: [400, 403],
  },
  {
    name: "forward to the allowed origin carries no proxy credentials onwards",
    send: fwd("http://127.0.0.2:{F}/headers"),
    expect: [200],
    check: (r) => assert.doesNotMatch(r.body.toLowerCase(), /proxy-authorization/),
  },
];

const CONNECTS: Case[] = [
  {
    name: "CONNECT to SSH port 22",
    send: connect("127.0.0.1:22"),
    expect: [403],
    check: mentions(/CONNECT_PORTS/),
  },
  { name: "CONNECT to SMTP port 25 by name", send: connect("example.com:25"), expect: [403] },
  { name: "CONNECT to loopback on 443", send: connect("127.0.0.1:443"), expect: [403] },
  { name: "CONNECT to localhost:443", send: connect("localhost:443"), expect: [403] },
  { name: "CONNECT to the metadata address", send: connect("169.254.169.254:443"), expect: [403] },
  { name: "CONNECT to [::1]:443", send: connect("[::1]:443"), expect: [403] },
  { name: "CONNECT to a private address on 8443", send: connect("10.0.0.1:8443"), expect: [403] },
  { name: "CONNECT without a port", send: connect("example.com"), expect: [400] },
  { name: "CONNECT with an empty host", send: connect(":443"), expect: [400] },
  { name: "CONNECT to port 0", send: connect("example.com:0"), expect: [400, 403] },
  {
    name: "CONNECT without credentials",
    send: connect("example.com:443", ""),
    expect: [407],
    check: challenge,
  },
];

const AUTHS: Case[] = [
  {
    name: "forward request without credentials",
    send: `GET http://127.0.0.2:{F}/json HTTP/1.1${CRLF}Host: 127.0.0.2${CRLF}${CRLF}`,
    expect: [407],
    check: challenge,
  },
  {
    name: "forward request with a wrong password",
    send: `GET http://127.0.0.2:{F}/json HTTP/1.1${CRLF}Host: x${CRLF}Proxy-Authorization: Basic ${
      btoa("alice:guess")
    }${CRLF}${CRLF}`,
    expect: [407],
    check: mentions(/wrong user name or password/),
  },
  {
    name: "forward request with an unknown user",
    send: `GET http://127.0.0.2:{F}/json HTTP/1.1${CRLF}Host: x${CRLF}Proxy-Authorization: Basic ${
      btoa("root:wonderland")
    }${CRLF}${CRLF}`,
    expect: [407],
  },
  {
    name: "malformed Basic credentials",
    send:
      `GET http://127.0.0.2:{F}/json HTTP/1.1${CRLF}Host: x${CRLF}Proxy-Authorization: Basic !!!${CRLF}${CRLF}`,
    expect: [407],
  },
  {
    name: "a Bearer token instead of Basic",
    send:
      `GET http://127.0.0.2:{F}/json HTTP/1.1${CRLF}Host: x${CRLF}Proxy-Authorization: Bearer abc${CRLF}${CRLF}`,
    expect: [407],
  },
  {
    name: "an 8 KiB Proxy-Authorization header",
    send: `GET http://127.0.0.2:{F}/json HTTP/1.1${CRLF}Host: x${CRLF}Proxy-Authorization: Basic ${
      "A".repeat(8192)
    }${CRLF}${CRLF}`,
    expect: [407, 431],
  },
];

const BODIES: Case[] = [
  {
    name: "Content-Length beyond MAX_BODY_SIZE",
    send: `POST /echo HTTP/1.1${CRLF}Host: x${CRLF}Content-Length: 10000000${CRLF}${CRLF}abc`,
    expect: [413],
  },
  {
    name: "chunked body growing past MAX_BODY_SIZE",
    send: `POST /echo HTTP/1.1${CRLF}Host: x${CRLF}Transfer-Encoding: chunked${CRLF}${CRLF}` +
      `${(40 * 1024).toString(16)}${CRLF}${"x".repeat(40 * 1024)}${CRLF}`.repeat(3) +
      `0${CRLF}${CRLF}`,
    expect: [413],
  },
  {
    name: "Expect: 100-continue with a too large body",
    send:
      `POST /echo HTTP/1.1${CRLF}Host: x${CRLF}Content-Length: 10000000${CRLF}Expect: 100-continue${CRLF}${CRLF}`,
    expect: [413, 417],
  },
];

function nonLoopbackAddress(): string | undefined {
  for (const i of Deno.networkInterfaces()) {
    if (i.family === "IPv4" && !i.address.startsWith("127.")) return i.address;
  }
  return undefined;
}

/** A proxy bound to a non-loopback local address (startProxy waits on 127.0.0.1 only). */
async function startProxyOn(host: string, env: Record<string, string>) {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", new URL("../main.ts", import.meta.url).pathname, "serve"],
    env: {
      LOG_LEVEL: "error",
      ACCESS_LOG: "false",
      CACHE_BACKEND: "off",
      REQUEST_FILTERS: "",
      ...env,
      HOST: host,
      PORT: String(port),
    },
    clearEnv: true,
    stdout: "null",
    stderr: "null",
    stdin: "null",
  }).spawn();
  await waitForPort(port, 30_000, host);
  return {
    port,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

Deno.test("abuse suite: 90+ hostile requests refused, the proxy keeps serving", async (t) => {
  const backend = await startTestBackend("abuse");
  // The one origin forward requests may reach: 127.0.0.2 is listed in FORWARD_ALLOW_PRIVATE,
  // everything else on loopback (127.0.0.1, localhost) is not.
  const allowed = await startBackend({ host: "127.0.0.2", port: 0, name: "allowed", graceMs: 500 });
  const htpasswd = await Deno.makeTempFile({ suffix: ".htpasswd" });
  await Deno.writeTextFile(htpasswd, `alice:${bcrypt.hashSync("wonderland", 4)}\n`);
  let proxy: TestProxy | undefined;
  try {
    proxy = await startProxy({
      env: {
        PROXY_MODE: "both",
        BACKEND_SERVERS: backend.url,
        PROXY_AUTH_FILE: htpasswd,
        FORWARD_ALLOW_PRIVATE: "127.0.0.2/32",
        MAX_BODY_SIZE: "64KiB",
        HEADER_TIMEOUT: "2",
        BODY_TIMEOUT: "2",
        CONNECTION_TIMEOUT: "5",
        TRUSTED_PROXIES: "127.0.0.1/32",
      },
    });
    const port = proxy.port;
    const fill = (s: string | Uint8Array) =>
      typeof s === "string"
        ? s.replaceAll("{B}", String(backend.port)).replaceAll("{F}", String(allowed.port))
        : s;
    let count = 0;
    const run = async (group: string, cases: Case[]) => {
      for (const c of cases) {
        count++;
        await t.step(`${group}: ${c.name}`, async () => {
          const r = await rawRequest(port, fill(c.send), { timeoutMs: 15_000 });
          const status = r.status === 0 ? 0 : r.status;
          assert.ok(
            c.expect.includes(status),
            `expected ${c.expect.join("|")}, got ${status}${r.closed ? " (closed)" : ""}: ${
              r.raw.slice(0, 300)
            }`,
          );
          c.check?.(r);
        });
      }
    };
    await run("smuggling", SMUGGLING);
    await run("sizes", SIZES);
    await run("request line", REQUEST_LINES);
    await run("uri", URIS);
    await run("ssrf", SSRF);
    await run("connect", CONNECTS);
    await run("auth", AUTHS);
    await run("body", BODIES);

    await t.step("slow headers: a client that stalls mid-head is cut off", async () => {
      count++;
      const c = await openRaw(port);
      try {
        await c.write(`GET /json HTTP/1.1${CRLF}Host: x${CRLF}X-Slow: `);
        const t0 = performance.now();
        const r = await c.response({ timeoutMs: 45_000, waitForClose: true });
        assert.ok(r.closed, "connection still open");
        assert.ok([0, 408].includes(r.status), `status ${r.status}`);
        assert.ok(performance.now() - t0 < 45_000);
      } finally {
        c.close();
      }
    });
    await t.step(
      "slowloris: one header byte every 250 ms does not keep the connection",
      async () => {
        count++;
        const c = await openRaw(port);
        try {
          await c.write(`GET /json HTTP/1.1${CRLF}Host: x${CRLF}`);
          let closedEarly = false;
          const deadline = Date.now() + 45_000;
          while (Date.now() < deadline) {
            try {
              await c.write("X");
            } catch {
              closedEarly = true;
              break;
            }
            const r = await c.response({ timeoutMs: 250 });
            if (r.closed) {
              closedEarly = true;
              break;
            }
          }
          assert.ok(closedEarly, "the drip kept the connection open for 45 s");
        } finally {
          c.close();
        }
      },
    );
    await t.step("idle connection: closed without a byte at HEADER_TIMEOUT", async () => {
      count++;
      const c = await openRaw(port);
      try {
        const t0 = performance.now();
        const r = await c.response({ timeoutMs: 30_000, waitForClose: true });
        assert.ok(r.closed, "connection still open");
        assert.ok(performance.now() - t0 < 2000 + 2500, `held ${performance.now() - t0} ms`);
      } finally {
        c.close();
      }
    });
    await t.step("stalled request body: 408 and close at BODY_TIMEOUT", async () => {
      count++;
      const c = await openRaw(port);
      try {
        await c.write(
          `POST /echo HTTP/1.1${CRLF}Host: x${CRLF}Content-Length: 50${CRLF}${CRLF}abc`,
        );
        const t0 = performance.now();
        const r = await c.response({ timeoutMs: 30_000, waitForClose: true });
        assert.equal(r.status, 408, r.raw.slice(0, 200));
        assert.ok(r.closed, "connection still open");
        assert.ok(performance.now() - t0 < 2000 + 2500, `held ${performance.now() - t0} ms`);
      } finally {
        c.close();
      }
    });
    await t.step(
      "an upgrade the backend answers 200 is not a pipe: one answer, then close",
      async () => {
        count++;
        const r = await rawRequest(
          port,
          `GET /json HTTP/1.1${CRLF}Host: x${CRLF}Connection: Upgrade${CRLF}Upgrade: websocket${CRLF}${CRLF}` +
            `GET /headers HTTP/1.1${CRLF}Host: x${CRLF}X-Forwarded-For: 6.6.6.6${CRLF}${CRLF}`,
          { timeoutMs: 15_000, waitForClose: true },
        );
        assert.ok(r.closed, "connection still open");
        assert.equal((r.raw.match(/^HTTP\/1\.1 \d{3}/gm) ?? []).length, 1, r.raw.slice(0, 400));
        assert.doesNotMatch(r.raw, /6\.6\.6\.6/);
      },
    );
    await t.step(
      "admin: no ADMIN_TOKEN and a non-loopback client (behind a trusted proxy) gets 403",
      async () => {
        count++;
        const r = await rawRequest(
          port,
          get("/proxy-stats", `X-Forwarded-For: 203.0.113.9${CRLF}`),
        );
        assert.equal(r.status, 403);
        assert.match(r.body, /ADMIN_TOKEN/);
        const m = await rawRequest(
          port,
          `POST /proxy-reload HTTP/1.1${CRLF}Host: x${CRLF}X-Forwarded-For: 203.0.113.9${CRLF}Content-Length: 0${CRLF}${CRLF}`,
        );
        assert.equal(m.status, 403);
      },
    );

    // Without such an interface the step is reported as ignored, never silently skipped;
    // tests/off_loopback_test.ts checks the same guard from an address it makes itself.
    const address = nonLoopbackAddress() ?? "";
    const realRemote = `admin from a real non-loopback address (${
      address || "none"
    }): token required`;
    await t.step({
      name: realRemote,
      ignore: ignoreUnless(realRemote, address !== "", "no non-loopback IPv4 interface"),
      fn: async () => {
        count += 3;
        const remote = await startProxyOn(address, { ADMIN_TOKEN: "t0ken-" + "x".repeat(24) });
        try {
          const ask = (extra: string) =>
            rawRequest(remote.port, get("/metrics", extra), { hostname: address });
          const missing = await ask("");
          assert.equal(missing.status, 401);
          assert.equal((await ask(`Authorization: Bearer wrong${CRLF}`)).status, 401);
          const ok = await ask(`Authorization: Bearer t0ken-${"x".repeat(24)}${CRLF}`);
          assert.equal(ok.status, 200);
          assert.match(ok.body, /proxy_requests_total|# TYPE/);
        } finally {
          await remote.stop();
        }
      },
    });

    // 93 with a non-loopback interface (3 admin cases need one): README's security section.
    assert.ok(count >= 90, `only ${count} hostile requests`);

    await t.step("after all of that the proxy still serves normal requests", async () => {
      const reverse = await fetch(`${proxy!.url}/json`);
      assert.equal(reverse.status, 200);
      await reverse.body?.cancel();
      const client = Deno.createHttpClient({
        proxy: { url: proxy!.url, basicAuth: { username: "alice", password: "wonderland" } },
      });
      try {
        const forward = await fetch(`http://127.0.0.2:${allowed.port}/json`, { client });
        assert.equal(forward.status, 200);
        await forward.body?.cancel();
      } finally {
        client.close();
      }
      const stats = await proxy!.stats();
      assert.ok(stats.requests_total > 0);
      assert.doesNotMatch(proxy!.output(), /uncaught|panic|internal proxy error/i);
    });
  } finally {
    await proxy?.stop();
    await allowed.close();
    await backend.close();
    await Deno.remove(htpasswd);
  }
});

/** A `.` or `..` path segment, also percent-encoded (`%2e`), which an origin may resolve. */
const DOT_SEGMENT = /(^|\/)(\.|%2e){1,2}(\/|\?|$)/i;

Deno.test("path traversal: the backend never receives a dot segment, it gets the resolved path", async () => {
  // A raw recorder, not a URL-parsing test origin: it sees the request-target byte for byte.
  const backend = startRecordingBackend();
  const proxy = await startProxy({ env: { BACKEND_SERVERS: backend.url } });
  const cases: [sent: string, resolved: string][] = [
    ["/../../etc/passwd", "/etc/passwd"],
    ["/a/b/../../../etc/passwd", "/etc/passwd"],
    ["/%2e%2e/%2E%2e/etc/passwd", "/etc/passwd"],
    ["/.%2e/x", "/x"],
    ["/a/./b/../c?q=../d", "/a/c?q=../d"],
    ["/a/%2e/b", "/a/b"],
    ["/a/..", "/"],
  ];
  try {
    for (const [sent, resolved] of cases) {
      const before = backend.requests.length;
      const r = await rawRequest(proxy.port, `GET ${sent} HTTP/1.1${CRLF}Host: x${CRLF}${CRLF}`);
      if (r.status === 400) {
        // Refusing is as good as resolving, as long as nothing went to the backend.
        assert.equal(backend.requests.length, before, `${sent}: refused but still forwarded`);
        continue;
      }
      assert.equal(r.status, 200, `${sent}: ${r.raw.slice(0, 200)}`);
      assert.equal(backend.requests.length, before + 1);
      const line = backend.requests[before].line;
      const target = line.split(" ")[1];
      assert.doesNotMatch(
        target.split("?")[0],
        DOT_SEGMENT,
        `${sent} reached the backend as ${line}`,
      );
      assert.equal(target, resolved, `${sent} reached the backend as ${line}`);
    }
  } finally {
    await proxy.stop();
    await backend.close();
  }
});
