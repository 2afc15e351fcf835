/**
 * Value parsers for settings. Each parser turns the raw text of a flag,
 * environment variable or `.env` line into a typed value, or throws a
 * {@linkcode ValueError} whose message says what is allowed.
 *
 * @module
 */
import { formatIp, parseCidr } from "../security/mod.ts";

/** Thrown by a parser; the loader prefixes the setting name and the value given. */
export class ValueError extends Error {}

export interface Parser<T> {
  /** Short description of the accepted form, shown in --help and the dashboard. */
  readonly kind: string;
  /** Accepted values, for enumerations. */
  readonly allowed?: readonly string[];
  parse(raw: string): T;
}

export function text(): Parser<string> {
  return { kind: "string", parse: (raw) => raw.trim() };
}

export function integer(min: number, max: number): Parser<number> {
  return {
    kind: `integer ${min}–${max}`,
    parse(raw) {
      const s = raw.trim();
      if (!/^-?\d+$/.test(s)) throw new ValueError(`expected an integer from ${min} to ${max}`);
      const n = Number(s);
      if (n < min || n > max) throw new ValueError(`expected an integer from ${min} to ${max}`);
      return n;
    },
  };
}

export function boolean(): Parser<boolean> {
  return {
    kind: "boolean",
    allowed: ["true", "false"],
    parse(raw) {
      const s = raw.trim().toLowerCase();
      if (["true", "1", "yes", "on"].includes(s)) return true;
      if (["false", "0", "no", "off"].includes(s)) return false;
      throw new ValueError("expected true/false, 1/0, yes/no or on/off");
    },
  };
}

export function oneOf<const T extends string>(values: readonly T[]): Parser<T> {
  return {
    kind: values.join("|"),
    allowed: values,
    parse(raw) {
      const s = raw.trim().toLowerCase();
      if ((values as readonly string[]).includes(s)) return s as T;
      throw new ValueError(`expected one of ${values.join(", ")}`);
    },
  };
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * A duration in milliseconds. A bare number means `bareUnit` (seconds for the
 * settings inherited from the threaded design), so `30` and `30s` agree.
 */
export function duration(bareUnit: "s" | "ms", min = 0, maxMs = 86_400_000): Parser<number> {
  return {
    kind: `duration (e.g. 30, 30s, 500ms, 2m; bare numbers are ${
      bareUnit === "s" ? "seconds" : "ms"
    })`,
    parse(raw) {
      const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/i.exec(raw.trim());
      if (!m) throw new ValueError("expected a duration such as 30, 30s, 500ms or 2m");
      const ms = Number(m[1]) * DURATION_UNITS[(m[2] ?? bareUnit).toLowerCase()];
      if (ms < min || ms > maxMs) {
        throw new ValueError(`expected a duration from ${min} ms to ${maxMs / 1000} s`);
      }
      return Math.round(ms);
    },
  };
}

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
};

/** A size in bytes: `65536`, `64KiB`, `8m`, `1GiB` (binary multiples). */
export function bytes(max = 2 ** 53): Parser<number> {
  return {
    kind: "size (e.g. 1024, 64KiB, 8MiB, 1GiB)",
    parse(raw) {
      const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(raw.trim());
      const unit = m ? SIZE_UNITS[m[2].toLowerCase()] : undefined;
      if (!m || unit === undefined) {
        throw new ValueError("expected a size such as 1024, 64KiB or 8MiB");
      }
      const n = Math.floor(Number(m[1]) * unit);
      if (n > max) throw new ValueError(`expected a size of at most ${max} bytes`);
      return n;
    },
  };
}

/** Comma-separated list; items trimmed, empty items dropped, each parsed by `item`. */
export function list<T>(item: Parser<T>, kind = `comma-separated ${item.kind}`): Parser<T[]> {
  return {
    kind,
    allowed: item.allowed,
    parse(raw) {
      return raw.split(",").map((s) => s.trim()).filter((s) => s !== "").map((s) => {
        try {
          return item.parse(s);
        } catch (err) {
          if (err instanceof ValueError) throw new ValueError(`item "${s}": ${err.message}`);
          throw err;
        }
      });
    },
  };
}

export function url(protocols: readonly string[]): Parser<URL> {
  return {
    kind: `URL (${protocols.join(", ")})`,
    parse(raw) {
      let u: URL;
      try {
        u = new URL(raw.trim());
      } catch {
        throw new ValueError(`expected a URL such as ${protocols[0]}//host:port`);
      }
      if (!protocols.includes(u.protocol)) {
        throw new ValueError(`expected a URL with scheme ${protocols.join(" or ")}`);
      }
      return u;
    },
  };
}

/** An IPv4 or IPv6 CIDR block, kept as text (src/security matches them). */
export interface CidrText {
  readonly address: string;
  readonly prefix: number;
  readonly text: string;
}

/** `10.0.0.0/8`, `::1/128`, or a single address (host route); parsed by src/security. */
export function cidr(): Parser<CidrText> {
  return {
    kind: "CIDR",
    parse(raw) {
      let c;
      try {
        c = parseCidr(raw);
      } catch (err) {
        const msg = (err as Error).message;
        throw new ValueError(
          msg.includes("is not an IP address")
            ? "expected an IP address or CIDR such as 10.0.0.0/8 or ::1/128"
            : msg,
        );
      }
      const address = formatIp({ family: c.family, value: c.base });
      return { address, prefix: c.bits, text: `${address}/${c.bits}` };
    },
  };
}

/** A backend of the reverse proxy: `http://10.0.0.1:8000 weight=3`. */
export interface BackendSpec {
  readonly url: URL;
  readonly weight: number;
}

export function backend(): Parser<BackendSpec> {
  const urlParser = url(["http:", "https:"]);
  return {
    kind: "backend URL with optional weight=N",
    parse(raw) {
      const [address, ...attrs] = raw.trim().split(/\s+/);
      const u = urlParser.parse(address);
      if (u.pathname !== "/" || u.search || u.hash || u.username) {
        throw new ValueError(
          "a backend is scheme://host:port only (no path, query or credentials)",
        );
      }
      let weight = 1;
      for (const attr of attrs) {
        const m = /^weight=(\d+)$/.exec(attr);
        if (!m || Number(m[1]) < 1 || Number(m[1]) > 1000) {
          throw new ValueError(`unknown attribute "${attr}" (allowed: weight=1..1000)`);
        }
        weight = Number(m[1]);
      }
      return { url: u, weight };
    },
  };
}

/** FORWARD_ALLOW_PRIVATE: none, all, or the CIDRs of private destinations that are allowed. */
export type PrivateAllowance = "none" | "all" | CidrText[];

export function privateAllowance(): Parser<PrivateAllowance> {
  const cidrs = list(cidr());
  return {
    kind: "false | true | comma-separated CIDRs",
    parse(raw) {
      const s = raw.trim().toLowerCase();
      if (["", "false", "0", "no", "none", "off"].includes(s)) return "none";
      if (["true", "1", "yes", "all", "on"].includes(s)) return "all";
      return cidrs.parse(raw);
    },
  };
}

/** RATE_LIMIT_BY: ip, user, or header:NAME. */
export type RateLimitKey = "ip" | "user" | { header: string };

export function rateLimitKey(): Parser<RateLimitKey> {
  return {
    kind: "ip | user | header:NAME",
    parse(raw) {
      const s = raw.trim();
      if (s === "ip" || s === "user") return s;
      const m = /^header:([!#$%&'*+.^_`|~0-9A-Za-z-]+)$/.exec(s);
      if (m) return { header: m[1].toLowerCase() };
      throw new ValueError("expected ip, user or header:NAME");
    },
  };
}

/** THREAD_POOL_SIZE: a positive integer, or auto (the number of CPUs). */
export function threadCount(): Parser<number> {
  const n = integer(1, 256);
  return {
    kind: "auto | integer 1–256",
    parse(raw) {
      return raw.trim().toLowerCase() === "auto"
        ? navigator.hardwareConcurrency || 1
        : n.parse(raw);
    },
  };
}

/**
 * REDIS_URL: empty, or `redis://[user:password@]host[:port][/db]` (`rediss://`
 * for TLS), checked at start-up so a typo is one clear line instead of a
 * connection error every few seconds. Kept as text for ioredis.
 */
export function redisUrl(): Parser<string> {
  const form = "redis://[user:password@]host[:port][/db] or rediss://… (TLS)";
  return {
    kind: "URL (redis://[user:password@]host[:port][/db] or rediss://)",
    parse(raw) {
      const s = raw.trim();
      if (s === "") return s;
      let u: URL;
      try {
        u = new URL(s);
      } catch {
        throw new ValueError(`expected ${form}`);
      }
      if (u.protocol !== "redis:" && u.protocol !== "rediss:") {
        throw new ValueError(`expected the scheme redis: or rediss:, as in ${form}`);
      }
      if (u.hostname === "") throw new ValueError(`no host; expected ${form}`);
      if (!/^\/?(\d+)?$/.test(u.pathname)) {
        throw new ValueError(`the path must be a database number (/0, /1, …); expected ${form}`);
      }
      return s;
    },
  };
}
