import assert from "node:assert/strict";
import {
  ConfigError,
  formatDotEnv,
  loadConfig,
  parseDotEnv,
  SCHEMA,
  SETTINGS,
  validateSettings,
} from "./mod.ts";

const noFile = (path: string): string => {
  throw new Deno.errors.NotFound(path);
};

function load(args: string[] = [], env: Record<string, string> = {}, file?: string) {
  return loadConfig({ args, env, readTextFile: file === undefined ? noFile : () => file });
}

Deno.test("defaults keep the threaded design's names and values", () => {
  const { config, mode } = load();
  assert.equal(config.host, "0.0.0.0");
  assert.equal(config.port, 8080);
  assert.equal(config.requestQueueSize, 100);
  assert.equal(config.connectionTimeout, 30_000);
  assert.equal(config.redisHost, "localhost");
  assert.equal(config.redisPort, 6379);
  assert.equal(config.redisDb, 0);
  assert.equal(config.cacheExpiration, 300);
  assert.deepEqual(config.backends, []);
  assert.equal(config.enableCompression, true);
  assert.equal(config.rateLimitRequests, 100);
  assert.equal(config.rateLimitWindow, 60);
  assert.deepEqual(config.requestFilters, ["ads", "trackers", "malware"]);
  assert.equal(config.logLevel, "info");
  assert.deepEqual(config.connectPorts, [80, 443, 8443]);
  assert.equal(config.threadPoolSize, navigator.hardwareConcurrency);
  assert.equal(mode, "forward");
});

Deno.test("flags beat environment beat .env beat defaults", () => {
  const file = "PORT=1111\nHOST=10.0.0.1\nREDIS_PORT=7000\n";
  const { config, sources } = load(["--port", "3333"], { PORT: "2222", HOST: "127.0.0.1" }, file);
  assert.equal(config.port, 3333);
  assert.equal(sources.port, "flag");
  assert.equal(config.host, "127.0.0.1");
  assert.equal(sources.host, "environment");
  assert.equal(config.redisPort, 7000);
  assert.equal(sources.redisPort, "env-file");
  assert.equal(sources.redisDb, "default");
});

Deno.test("the threaded design's flags are accepted", () => {
  const { config, mode } = load([
    "--host=127.0.0.1",
    "--port=9000",
    "--threads=3",
    "--redis-host=redis.local",
    "--redis-port=6380",
    "--cache-expiry=60",
    "--backend=http://127.0.0.1:8001,http://127.0.0.1:8002 weight=3",
  ]);
  assert.equal(config.threadPoolSize, 3);
  assert.equal(config.redisHost, "redis.local");
  assert.equal(config.cacheExpiration, 60);
  assert.deepEqual(config.backends.map((b) => [b.url.origin, b.weight]), [
    ["http://127.0.0.1:8001", 1],
    ["http://127.0.0.1:8002", 3],
  ]);
  assert.equal(mode, "reverse");
});

Deno.test("booleans, durations, sizes and lists are parsed leniently but strictly", () => {
  const { config } = load([], {
    ENABLE_COMPRESSION: "no",
    ACCESS_LOG: "1",
    CONNECTION_TIMEOUT: "500ms",
    CACHE_MEMORY_SIZE: "16MiB",
    REQUEST_FILTERS: " ads , malware ,",
    ALLOWED_CLIENTS: "10.0.0.0/8, ::1",
    FORWARD_ALLOW_PRIVATE: "127.0.0.0/8",
  });
  assert.equal(config.enableCompression, false);
  assert.equal(config.accessLog, true);
  assert.equal(config.connectionTimeout, 500);
  assert.equal(config.cacheMemorySize, 16 * 1024 * 1024);
  assert.deepEqual(config.requestFilters, ["ads", "malware"]);
  assert.deepEqual(config.allowedClients.map((c) => c.text), ["10.0.0.0/8", "::1/128"]);
  assert.deepEqual(config.forwardAllowPrivate, [{
    address: "127.0.0.0",
    prefix: 8,
    text: "127.0.0.0/8",
  }]);
  assert.equal(load([], { REQUEST_FILTERS: "" }).config.requestFilters.length, 0);
});

Deno.test("a bad value stops start-up with one line naming setting, value and what is allowed", () => {
  const cases: [string[], Record<string, string>, RegExp][] = [
    [[], { PORT: "eighty" }, /^PORT: invalid value "eighty": expected an integer from 0 to 65535$/],
    [["--port", "70000"], {}, /^--port \(PORT\): invalid value "70000"/],
    [
      [],
      { ENABLE_COMPRESSION: "maybe" },
      /^ENABLE_COMPRESSION: invalid value "maybe": expected true\/false/,
    ],
    [
      [],
      { CONNECTION_TIMEOUT: "soon" },
      /^CONNECTION_TIMEOUT: invalid value "soon": expected a duration/,
    ],
    [
      [],
      { BACKEND_SERVERS: "ftp://x" },
      /^BACKEND_SERVERS: invalid value "ftp:\/\/x": item "ftp:\/\/x"/,
    ],
    [[], { BACKEND_SERVERS: "http://a:1 weight=0" }, /weight=1\.\.1000/],
    [[], { BACKEND_SERVERS: "http://a:1/path" }, /no path/],
    [[], { REQUEST_FILTERS: "ads,porn" }, /item "porn": expected one of ads, trackers, malware/],
    [[], { ALLOWED_CLIENTS: "10.0.0.300/8" }, /^ALLOWED_CLIENTS: .*expected an IP address or CIDR/],
    [[], { LOG_LEVEL: "loud" }, /^LOG_LEVEL: .*expected one of debug, info, warn, error/],
    [[], { TLS_CERT: "cert.pem" }, /^TLS_CERT and TLS_KEY/],
    [[], { PROXY_MODE: "reverse" }, /^PROXY_MODE: reverse mode needs BACKEND_SERVERS/],
    [["--bogus", "1"], {}, /Unknown option '--bogus' \(see proxy serve --help\)/],
    [["--port"], {}, /--port/],
  ];
  for (const [args, env, pattern] of cases) {
    assert.throws(() => load(args, env), (err: Error) => {
      assert.ok(err instanceof ConfigError, `${err}`);
      assert.ok(!err.message.includes("\n"), "one line");
      assert.match(err.message, pattern);
      return true;
    });
  }
});

Deno.test("a named --env-file that is missing is an error; a missing ./.env is not", () => {
  assert.throws(() => load(["--env-file", "nope.env"]), /--env-file: cannot read "nope.env"/);
  assert.equal(load().envFile, undefined);
});

Deno.test("validateSettings reports field errors keyed by environment name", () => {
  assert.deepEqual(validateSettings({ PORT: "80", LOG_LEVEL: "debug" }), { ok: true });
  const bad = validateSettings({ PORT: "x", HOST: "a\nPORT=1", NOPE: "1" });
  assert.equal(bad.ok, false);
  if (!bad.ok) {
    assert.match(bad.errors.PORT, /expected an integer/);
    assert.match(bad.errors.HOST, /line breaks/);
    assert.equal(bad.errors.NOPE, "unknown setting");
  }
});

Deno.test(".env round trip keeps comments and refuses line breaks", () => {
  const before = "# proxy settings\nPORT=8080\n\n# redis\nREDIS_HOST=localhost\nOLD=1\n";
  const after = formatDotEnv({ PORT: "9090", REDIS_HOST: "redis one", LOG_LEVEL: "debug" }, before);
  assert.equal(
    after,
    '# proxy settings\nPORT=9090\n\n# redis\nREDIS_HOST="redis one"\nLOG_LEVEL=debug\n',
  );
  assert.deepEqual(parseDotEnv(after), {
    PORT: "9090",
    REDIS_HOST: "redis one",
    LOG_LEVEL: "debug",
  });
  assert.throws(() => formatDotEnv({ PORT: "1\nEVIL=1" }), /line breaks/);
});

Deno.test("every setting is documented and its default parses", () => {
  for (const s of SETTINGS) {
    assert.ok(s.description.length > 10, s.env);
    assert.match(s.env, /^[A-Z][A-Z0-9_]+$/);
    const parser = SCHEMA[s.key].parser as { parse(raw: string): unknown };
    assert.doesNotThrow(() => parser.parse(s.default), `${s.env}: default "${s.default}"`);
  }
});
