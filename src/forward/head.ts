/**
 * Response head parsing (RFC 9112 §4, §5, §6.3): status line, header fields,
 * framing (Content-Length / Transfer-Encoding) and connection persistence.
 *
 * @module
 */

import { UpstreamError } from "./errors.ts";
import { headerTokens } from "./headers.ts";

/**
 * Index just past the blank line ending a head in `b[start, end)`, or -1.
 * Accepts CRLF and bare LF line ends. `from` lets a caller resume a search.
 */
export function findHeadEnd(b: Uint8Array, start: number, end: number, from = start): number {
  let i = from > start ? from - 1 : start;
  while (true) {
    i = b.indexOf(10, i);
    if (i < 0 || i + 1 >= end) return -1;
    const next = b[i + 1];
    if (next === 10) return i + 2;
    if (next === 13) {
      if (i + 2 >= end) return -1;
      if (b[i + 2] === 10) return i + 3;
    }
    i++;
  }
}

/** A parsed response head; `headers` already lacks hop-by-hop fields and Via. */
export interface ResponseHead {
  status: number;
  /** Lower-cased names; end-to-end fields only (plus Connection/Upgrade when asked to keep them). */
  headers: [string, string][];
  /** Declared Content-Length, -1 when absent. */
  contentLength: number;
  /** Transfer-Encoding: chunked present (it wins over Content-Length). */
  chunked: boolean;
  /** The connection cannot be kept: `Connection: close`, or HTTP/1.0 without keep-alive. */
  close: boolean;
  /** The origin's Via value, if any (the caller appends its own). */
  via: string | undefined;
  /** Idle lifetime announced by `Keep-Alive: timeout=N` (ms), if any. */
  keepAliveMs: number | undefined;
}

function protocol(message: string): UpstreamError {
  return new UpstreamError("protocol", "upstream sent " + message, true);
}

const DIGITS = /^[0-9]+$/;
const KEEP_ALIVE_TIMEOUT = /timeout\s*=\s*(\d{1,6})/i;

function parseLength(value: string, prior: number): number {
  let n = prior;
  for (const part of value.split(",")) {
    const t = part.trim();
    if (!DIGITS.test(t) || t.length > 15) throw protocol("an invalid Content-Length: " + value);
    const v = Number(t);
    if (n >= 0 && v !== n) throw protocol("conflicting Content-Length values");
    n = v;
  }
  return n;
}

/**
 * Parses a head (status line through the blank line, decoded as latin1).
 * With `keepUpgrade`, `Connection` and `Upgrade` stay in `headers` (for 101 responses).
 * Throws UpstreamError "protocol" on malformed input.
 */
export function parseResponseHead(text: string, keepUpgrade = false): ResponseHead {
  let lineEnd = text.indexOf("\n");
  if (lineEnd < 0) throw protocol("no status line");
  let line = text.charCodeAt(lineEnd - 1) === 13
    ? text.slice(0, lineEnd - 1)
    : text.slice(0, lineEnd);
  // "HTTP/1.x SSS[ reason]"
  const minor = line.charCodeAt(7);
  if (
    !line.startsWith("HTTP/1.") || (minor !== 48 && minor !== 49) || line.charCodeAt(8) !== 32 ||
    (line.length > 12 && line.charCodeAt(12) !== 32)
  ) {
    throw protocol("a malformed status line: " + JSON.stringify(line.slice(0, 80)));
  }
  const d0 = line.charCodeAt(9) - 48, d1 = line.charCodeAt(10) - 48, d2 = line.charCodeAt(11) - 48;
  if (!(d0 >= 1 && d0 <= 9 && d1 >= 0 && d1 <= 9 && d2 >= 0 && d2 <= 9)) {
    throw protocol("a malformed status code: " + JSON.stringify(line.slice(0, 80)));
  }
  const status = d0 * 100 + d1 * 10 + d2;
  const http10 = minor === 48;

  const headers: [string, string][] = [];
  let contentLength = -1;
  let te: string | undefined;
  let via: string | undefined;
  let close = false;
  let keepAlive = false;
  let named: string[] | undefined;
  let keepAliveMs: number | undefined;
  let pos = lineEnd + 1;
  const n = text.length;
  while (pos < n) {
    lineEnd = text.indexOf("\n", pos);
    if (lineEnd < 0) lineEnd = n;
    const stop = text.charCodeAt(lineEnd - 1) === 13 ? lineEnd - 1 : lineEnd;
    if (stop <= pos) break; // the blank line
    line = text.slice(pos, stop);
    pos = lineEnd + 1;
    const first = line.charCodeAt(0);
    if (first === 32 || first === 9) {
      // obs-fold: a proxy may replace it with a space (RFC 9112 §5.2).
      const last = headers[headers.length - 1];
      if (last === undefined) throw protocol("a folded first header line");
      last[1] = (last[1] + " " + line.trim()).trim();
      continue;
    }
    const colon = line.indexOf(":");
    if (colon <= 0) throw protocol("a malformed header line: " + JSON.stringify(line.slice(0, 80)));
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    switch (name) {
      case "content-length": {
        const had = contentLength;
        contentLength = parseLength(value, contentLength);
        if (had < 0) headers.push([name, String(contentLength)]);
        continue;
      }
      case "transfer-encoding":
        te = te === undefined ? value : te + ", " + value;
        continue;
      case "connection":
        for (const t of headerTokens(value)) {
          if (t === "close") close = true;
          else if (t === "keep-alive") keepAlive = true;
          else if (t !== "upgrade") (named ??= []).push(t);
        }
        if (keepUpgrade) headers.push([name, value]);
        continue;
      case "upgrade":
        if (keepUpgrade) headers.push([name, value]);
        continue;
      case "via":
        via = via === undefined ? value : via + ", " + value;
        continue;
      case "keep-alive": {
        const m = KEEP_ALIVE_TIMEOUT.exec(value);
        if (m !== null) keepAliveMs = Number(m[1]) * 1000;
        continue;
      }
      case "proxy-connection":
      case "proxy-authenticate":
      case "proxy-authorization":
      case "te":
      case "trailer":
        continue;
    }
    headers.push([name, value]);
  }

  let chunked = false;
  if (te !== undefined) {
    const codings = headerTokens(te);
    if (codings.length !== 1 || codings[0] !== "chunked") {
      throw protocol("an unsupported Transfer-Encoding: " + te);
    }
    chunked = true;
    if (contentLength >= 0) {
      // Both: chunked wins (RFC 9112 §6.3), the length is dropped and the connection not reused.
      close = true;
      contentLength = -1;
      const i = headers.findIndex((h) => h[0] === "content-length");
      if (i >= 0) headers.splice(i, 1);
    }
  }
  if (http10 && !keepAlive) close = true;
  const filtered = named === undefined ? headers : headers.filter((h) => !named.includes(h[0]));
  return { status, headers: filtered, contentLength, chunked, close, via, keepAliveMs };
}
