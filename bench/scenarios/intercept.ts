/**
 * intercept: TLS interception (TLS_INTERCEPT=on) against Squid with
 * ssl-bump (Debian's squid-openssl), both with the same local CA:
 *
 * - handshakes/s: CONNECT, then a TLS handshake with the leaf for a cached
 *   name, then close — what every new HTTPS connection of a client costs;
 * - first handshakes/s: the same to 200 distinct names (site0.bench.test…),
 *   so every handshake waits for a certificate to be minted;
 * - intercepted cache hits/s: keep-alive HTTPS connections through the
 *   proxy, each asking again for a 1 KiB `max-age=3600` response.
 *
 * wrk cannot speak TLS through a CONNECT tunnel, so the load comes from a
 * small client in this process (Deno's rustls). A third measurement backs
 * the design choice of src/intercept/tls_server.ts: node:tls `TLSSocket`
 * over the connection we hold, against a node:tls server on a loopback port
 * that the tunnel pipes into.
 *
 * @module
 */
import { join } from "node:path";
import { createCa } from "../../src/intercept/mod.ts";
import { freePort, type Proc, startProcess } from "../lib/process.ts";
import { startProxy } from "../lib/proxy.ts";
import type { BenchContext, Ratio, Scenario, ScenarioResult, TargetRow } from "../lib/types.ts";

const FIXTURES = new URL("../../tests/fixtures/", import.meta.url).pathname;
const ORIGIN_CA = join(FIXTURES, "ca.crt");
const BODY = "x".repeat(1024);
const enc = new TextEncoder();
const dec = new TextDecoder();

/** A TLS origin (the test certificate for localhost) answering 1 KiB, cacheable for an hour. */
function startTlsOrigin() {
  let requests = 0;
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: Deno.readTextFileSync(join(FIXTURES, "tls.crt")),
    key: Deno.readTextFileSync(join(FIXTURES, "tls.key")),
    onListen() {},
  }, () => {
    requests++;
    return new Response(BODY, {
      headers: { "cache-control": "public, max-age=3600", "content-type": "text/plain" },
    });
  });
  return { port: server.addr.port, requests: () => requests, close: () => server.shutdown() };
}

/** squid.conf for client-first ssl-bump with our CA, memory cache on, logs in `dir`. */
function squidBumpConfig(dir: string, port: number): string {
  return `http_port 127.0.0.1:${port} ssl-bump tls-cert=${dir}/ca.pem tls-key=${dir}/ca-key.pem generate-host-certificates=on dynamic_cert_mem_cache_size=16MB
sslcrtd_program /usr/lib/squid/security_file_certgen -s ${dir}/ssl_db -M 16MB
sslcrtd_children 5 startup=1 idle=1
ssl_bump bump all
tls_outgoing_options cafile=${ORIGIN_CA}
acl localnet src 127.0.0.0/8 ::1
http_access allow localnet
http_access deny all
cache_mem 64 MB
maximum_object_size_in_memory 1 MB
access_log none
cache_store_log none
cache_log ${dir}/cache.log
pid_filename ${dir}/squid.pid
coredump_dir ${dir}
netdb_filename none
workers 1
shutdown_lifetime 1 seconds
`;
}

/** Why Squid cannot bump here, or undefined when it can (squid-openssl's helper is present). */
function squidBumpMissing(ctx: BenchContext): string | undefined {
  if (!ctx.tools.squid) return "squid not found (apt-get install squid-openssl)";
  try {
    Deno.statSync("/usr/lib/squid/security_file_certgen");
  } catch {
    return "no ssl-bump: Debian's squid package is the GnuTLS build; apt-get install squid-openssl";
  }
  return undefined;
}

async function startSquidBump(dir: string, caDir: string, port: number): Promise<Proc> {
  await Deno.mkdir(dir, { recursive: true });
  // Squid started as root runs as the "proxy" user: it needs the CA key and the cert db
  // readable in its private bench directory (never the operator's own CA).
  await Deno.copyFile(join(caDir, "ca.pem"), join(dir, "ca.pem"));
  await Deno.copyFile(join(caDir, "ca-key.pem"), join(dir, "ca-key.pem"));
  const init = await new Deno.Command("/usr/lib/squid/security_file_certgen", {
    args: ["-c", "-s", join(dir, "ssl_db"), "-M", "16MB"],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!init.success) throw new Error(`security_file_certgen: ${dec.decode(init.stderr)}`);
  if (Deno.uid() === 0) {
    await new Deno.Command("chown", { args: ["-R", "proxy", dir] }).output();
  }
  await Deno.chmod(dir, 0o777);
  // Its certificate helper runs as that user too and must get through the (0700) bench directory.
  await Deno.chmod(join(dir, ".."), 0o711);
  await Deno.writeTextFile(join(dir, "squid.conf"), squidBumpConfig(dir, port));
  return await startProcess({
    name: "squid",
    cmd: "squid",
    args: ["-N", "-f", join(dir, "squid.conf")],
    readyPort: port,
  });
}

/** Reads until the end of a response head; returns the head and any bytes after it. */
async function readHead(
  conn: Deno.Conn,
  buf: Uint8Array,
  carry: Uint8Array,
): Promise<{ head: string; rest: Uint8Array }> {
  let data = carry;
  for (;;) {
    const text = dec.decode(data);
    const end = text.indexOf("\r\n\r\n");
    if (end >= 0) {
      const headBytes = enc.encode(text.slice(0, end + 4)).length;
      return { head: text.slice(0, end), rest: data.subarray(headBytes) };
    }
    const n = await conn.read(buf);
    if (n === null) throw new Error("connection closed before a response head");
    const next = new Uint8Array(data.length + n);
    next.set(data);
    next.set(buf.subarray(0, n), data.length);
    data = next;
  }
}

/** CONNECT through the proxy and a TLS handshake trusting `ca`. */
async function openIntercepted(
  proxyPort: number,
  name: string,
  port: number,
  ca: string,
): Promise<Deno.TlsConn> {
  const tcp = await Deno.connect({ hostname: "127.0.0.1", port: proxyPort });
  tcp.setNoDelay(true);
  try {
    const host = name.includes(":") ? `[${name}]:${port}` : `${name}:${port}`;
    await tcp.write(enc.encode(`CONNECT ${host} HTTP/1.1\r\nhost: ${host}\r\n\r\n`));
    const { head } = await readHead(tcp, new Uint8Array(4096), new Uint8Array(0));
    if (!/^HTTP\/1\.[01] 200/.test(head)) {
      throw new Error(`CONNECT refused: ${head.split("\r\n")[0]}`);
    }
    const tls = await Deno.startTls(tcp, { hostname: name, caCerts: [ca] });
    await tls.handshake();
    return tls;
  } catch (err) {
    try {
      tcp.close();
    } catch { /* owned by the TLS connection */ }
    throw err;
  }
}

interface LoadResult {
  count: number;
  errors: number;
  perSec: number;
  p50Ms: number;
  p99Ms: number;
  firstError?: string;
}

/** Runs `op` on `concurrency` loops for `seconds` (or until `limit` operations), timing each. */
async function load(
  concurrency: number,
  seconds: number,
  op: (i: number) => Promise<void>,
  limit = Infinity,
): Promise<LoadResult> {
  const latencies: number[] = [];
  let errors = 0;
  let issued = 0;
  let firstError: string | undefined;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < deadline && issued < limit) {
      const i = issued++;
      const t = performance.now();
      try {
        await op(i);
        latencies.push(performance.now() - t);
      } catch (err) {
        errors++;
        firstError ??= (err as Error).message;
      }
    }
  }));
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * q))] ?? 0;
  return {
    count: latencies.length,
    errors,
    perSec: latencies.length / elapsed,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    firstError,
  };
}

/** Keep-alive GETs on intercepted connections, one loop per connection. */
async function cacheHits(
  proxyPort: number,
  originPort: number,
  ca: string,
  concurrency: number,
  seconds: number,
  hitHeader: RegExp,
): Promise<LoadResult> {
  const conns = await Promise.all(
    Array.from(
      { length: concurrency },
      () => openIntercepted(proxyPort, "localhost", originPort, ca),
    ),
  );
  const request = enc.encode(`GET /hit HTTP/1.1\r\nhost: localhost:${originPort}\r\n\r\n`);
  const state = conns.map((c) => ({
    conn: c,
    buf: new Uint8Array(16384),
    carry: new Uint8Array(0) as Uint8Array,
  }));
  let next = 0;
  try {
    return await load(concurrency, seconds, async () => {
      const s = state[next++ % state.length];
      // One request at a time per connection: take it out of the rotation while in use.
      state.splice(state.indexOf(s), 1);
      try {
        await s.conn.write(request);
        const { head, rest } = await readHead(s.conn, s.buf, s.carry);
        if (!hitHeader.test(head)) throw new Error(`not a cache hit: ${head.split("\r\n")[0]}`);
        const length = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? NaN);
        let have: Uint8Array = rest;
        while (have.length < length) {
          const n = await s.conn.read(s.buf);
          if (n === null) throw new Error("closed mid-body");
          const grown = new Uint8Array(have.length + n);
          grown.set(have);
          grown.set(s.buf.subarray(0, n), have.length);
          have = grown;
        }
        s.carry = have.subarray(length);
      } finally {
        state.push(s);
      }
    });
  } finally {
    for (const c of conns) {
      try {
        c.close();
      } catch { /* gone */ }
    }
  }
}

function row(target: string, r: LoadResult, note?: string): TargetRow {
  return {
    target,
    status: "ok",
    rps: Math.round(r.perSec),
    p50Ms: Math.round(r.p50Ms * 100) / 100,
    p99Ms: Math.round(r.p99Ms * 100) / 100,
    errors: r.errors,
    requests: r.count,
    note: [note, r.firstError && `first error: ${r.firstError}`].filter(Boolean).join("; ") ||
      undefined,
  };
}

/**
 * The server-side choice: a child process serving TLS either with node:tls
 * TLSSocket over each accepted Deno.Conn (what src/intercept does) or by
 * piping each accepted connection into a node:tls server on a loopback port.
 */
const SERVER_PROBE = `
import tls from "node:tls";
import { Duplex } from "node:stream";
const { MODE, PORT, CERT, KEY } = Deno.env.toObject();
const ctx = tls.createSecureContext({ cert: CERT, key: KEY });
const reply = new TextEncoder().encode("HTTP/1.1 200 OK\\r\\ncontent-length: 2\\r\\nconnection: close\\r\\n\\r\\nok");
function duplexOf(conn) {
  return new Duplex({
    read() { const b = new Uint8Array(16384); conn.read(b).then((n) => this.push(n === null ? null : b.subarray(0, n)), (e) => this.destroy(e)); },
    write(c, _e, cb) { (async () => { let o = 0; while (o < c.length) o += await conn.write(c.subarray(o)); })().then(() => cb(), cb); },
    final(cb) { conn.closeWrite().then(() => cb(), () => cb()); },
    destroy(e, cb) { try { conn.close(); } catch {} cb(e); },
  });
}
const onSecure = (sock) => { sock.on("error", () => {}); sock.once("data", () => sock.end(reply)); };
const l = Deno.listen({ hostname: "127.0.0.1", port: Number(PORT) });
if (MODE === "socket") {
  for await (const conn of l) {
    conn.setNoDelay(true);
    onSecure(new tls.TLSSocket(duplexOf(conn), { isServer: true, secureContext: ctx, ALPNProtocols: ["http/1.1"] }));
  }
} else {
  const srv = tls.createServer({ SNICallback: (_n, cb) => cb(null, ctx), ALPNProtocols: ["http/1.1"] }, onSecure);
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  const inner = srv.address().port;
  const pipe = async (a, b) => { try { await a.readable.pipeTo(b.writable); } catch {} };
  for await (const conn of l) {
    conn.setNoDelay(true);
    Deno.connect({ hostname: "127.0.0.1", port: inner }).then((up) => { up.setNoDelay(true); pipe(conn, up); pipe(up, conn); });
  }
}
`;

async function serverChoice(ctx: BenchContext): Promise<TargetRow[]> {
  const rows: TargetRow[] = [];
  const cert = Deno.readTextFileSync(join(FIXTURES, "tls.crt"));
  const key = Deno.readTextFileSync(join(FIXTURES, "tls.key"));
  const ca = Deno.readTextFileSync(ORIGIN_CA);
  for (const mode of ["socket", "loopback"]) {
    const port = freePort();
    const proc = await startProcess({
      name: `tls-${mode}`,
      cmd: Deno.execPath(),
      args: ["eval", SERVER_PROBE],
      env: { MODE: mode, PORT: String(port), CERT: cert, KEY: key },
      readyPort: port,
    });
    try {
      const op = async () => {
        const tcp = await Deno.connect({ hostname: "127.0.0.1", port });
        tcp.setNoDelay(true);
        const tls = await Deno.startTls(tcp, { hostname: "localhost", caCerts: [ca] });
        try {
          await tls.write(enc.encode("GET / HTTP/1.1\r\nhost: localhost\r\n\r\n"));
          const { head } = await readHead(tls, new Uint8Array(1024), new Uint8Array(0));
          if (!head.startsWith("HTTP/1.1 200")) throw new Error(head);
        } finally {
          tls.close();
        }
      };
      await load(8, 1, op);
      const r = await load(32, ctx.durationSec, op);
      rows.push(row(
        mode === "socket"
          ? "TLS server: TLSSocket over the held connection (chosen)"
          : "TLS server: node:tls server on loopback, piped",
        r,
        "handshake + 1 request per connection",
      ));
    } finally {
      await proc.stop();
    }
  }
  return rows;
}

export const scenario: Scenario = {
  name: "intercept",
  description:
    "TLS interception: handshakes/s, first handshakes (minting), intercepted cache hits/s; proxy vs Squid ssl-bump",
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const caDir = join(ctx.tmpDir, "ca");
    await createCa(caDir);
    const ca = await Deno.readTextFile(join(caDir, "ca.pem"));
    const origin = startTlsOrigin();
    ctx.defer(() => origin.close());
    const rows: TargetRow[] = [];
    const notes: string[] = [];
    const concurrency = Math.min(ctx.connections, 32);
    const seconds = ctx.durationSec;

    const measure = async (label: string, proxyPort: number, hit: RegExp) => {
      // Prime: the leaf for localhost and the cached response.
      const prime = await openIntercepted(proxyPort, "localhost", origin.port, ca);
      await prime.write(
        enc.encode(`GET /hit HTTP/1.1\r\nhost: localhost:${origin.port}\r\n\r\n`),
      );
      // Read the head only: Squid closes without close_notify, which rustls reports as an error.
      const primed = await readHead(prime, new Uint8Array(16384), new Uint8Array(0));
      prime.close();
      if (!/^HTTP\/1\.1 200/.test(primed.head)) throw new Error(`priming: ${primed.head}`);
      const askedBefore = origin.requests();
      ctx.log(`${label}: handshakes`);
      await load(
        concurrency,
        1,
        async () => (await openIntercepted(proxyPort, "localhost", origin.port, ca)).close(),
      );
      rows.push(row(
        `${label}: handshakes/s (cached leaf)`,
        await load(
          concurrency,
          seconds,
          async () => (await openIntercepted(proxyPort, "localhost", origin.port, ca)).close(),
        ),
      ));
      ctx.log(`${label}: first handshakes to 200 names`);
      rows.push(row(
        `${label}: first handshakes/s (200 new names)`,
        await load(
          concurrency,
          60,
          async (i) =>
            (await openIntercepted(
              proxyPort,
              `site${i}.bench.test`,
              origin.port,
              ca,
            )).close(),
          200,
        ),
      ));
      ctx.log(`${label}: cache hits`);
      const hits = await cacheHits(proxyPort, origin.port, ca, concurrency, seconds, hit);
      rows.push({
        ...row(`${label}: intercepted cache hits/s (1 KiB, keep-alive)`, hits),
        originRequests: origin.requests() - askedBefore,
      });
    };

    // ── this proxy ──
    const proxyPort = freePort();
    const proxy = await startProxy(ctx.root, "proxy", proxyPort, {
      PORT: String(proxyPort),
      HOST: "127.0.0.1",
      PROXY_MODE: "forward",
      TLS_INTERCEPT: "on",
      TLS_INTERCEPT_CA_DIR: caDir,
      FORWARD_ALLOW_PRIVATE: "true",
      CONNECT_PORTS: `443,${origin.port}`,
      UPSTREAM_CA_FILE: ORIGIN_CA,
      CACHE_BACKEND: "memory",
      ACCESS_LOG: "false",
      RATE_LIMIT_REQUESTS: "0",
      LOG_LEVEL: "warn",
    });
    try {
      await measure("proxy", proxyPort, /x-cache: HIT/i);
    } catch (err) {
      rows.push({ target: "proxy", status: "failed", note: (err as Error).message });
    }
    try {
      const stats = await (await fetch(`http://127.0.0.1:${proxyPort}/proxy-stats`)).json();
      if (stats.intercept) {
        notes.push(
          `proxy: ${stats.intercept.certificates_minted} certificates minted, ` +
            `${stats.intercept.mint_ms_avg} ms each on average (@peculiar/x509, ECDSA P-256)`,
        );
      }
    } finally {
      await proxy.stop();
    }

    // ── Squid ssl-bump ──
    const missing = squidBumpMissing(ctx);
    if (missing) {
      rows.push({ target: "squid ssl-bump", status: "skipped", note: missing });
    } else {
      const squidPort = freePort();
      let squid: Proc | undefined;
      try {
        squid = await startSquidBump(join(ctx.tmpDir, "squid"), caDir, squidPort);
        await measure("squid", squidPort, /x-cache: HIT/i);
      } catch (err) {
        rows.push({ target: "squid ssl-bump", status: "failed", note: (err as Error).message });
      } finally {
        await squid?.stop();
      }
    }

    ctx.log("TLS server side: TLSSocket over the connection vs a loopback node:tls server");
    rows.push(...await serverChoice(ctx));

    const ratios: Ratio[] = [];
    const rps = (t: string) => rows.find((r) => r.target === t)?.rps;
    for (
      const what of [
        "handshakes/s (cached leaf)",
        "first handshakes/s (200 new names)",
        "intercepted cache hits/s (1 KiB, keep-alive)",
      ]
    ) {
      const a = rps(`proxy: ${what}`);
      const b = rps(`squid: ${what}`);
      if (a && b) ratios.push({ label: `proxy/squid ${what}`, value: a / b });
    }
    notes.push(
      `load from this process (Deno TLS client), ${concurrency} concurrent, ${seconds}s per measurement; ` +
        `squid: client-first ssl-bump (ssl_bump bump all), same CA, memory cache`,
    );
    return { rows, ratios, notes };
  },
};
