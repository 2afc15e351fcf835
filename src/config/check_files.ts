/**
 * The files a configuration names, checked the way start-up uses them:
 * TLS_CERT + TLS_KEY as one usable pair, UPSTREAM_CA_FILE, PROXY_AUTH_FILE,
 * FILTER_LISTS and LOG_FILE. Problems stop start-up; warnings do not.
 *
 * @module
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { dirname } from "node:path";
import { parseHtpasswd } from "../security/mod.ts";
import { parseList } from "../filter/mod.ts";
import type { Config } from "./schema.ts";

export interface Findings {
  problems: string[];
  warnings: string[];
}

function readText(path: string): string {
  return Deno.readTextFileSync(path);
}

const message = (err: unknown) => (err as Error).message;

/** TLS_CERT and TLS_KEY: readable PEM, the key belongs to the certificate, not expired. */
function checkTls(c: Config, f: Findings): void {
  if (c.tlsCert === "" || c.tlsKey === "") return; // the pair rule is load.ts's
  let certPem: string, keyPem: string;
  try {
    certPem = readText(c.tlsCert);
  } catch (err) {
    f.problems.push(`TLS_CERT: cannot read "${c.tlsCert}": ${message(err)}`);
    return;
  }
  try {
    keyPem = readText(c.tlsKey);
  } catch (err) {
    f.problems.push(`TLS_KEY: cannot read "${c.tlsKey}": ${message(err)}`);
    return;
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    f.problems.push(`TLS_CERT: "${c.tlsCert}" is not a PEM certificate: ${message(err)}`);
    return;
  }
  let key;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    f.problems.push(`TLS_KEY: "${c.tlsKey}" is not a PEM private key: ${message(err)}`);
    return;
  }
  if (!cert.checkPrivateKey(key)) {
    f.problems.push(
      `TLS_CERT/TLS_KEY: the key "${c.tlsKey}" does not belong to the certificate "${c.tlsCert}"`,
    );
    return;
  }
  const validTo = new Date(cert.validTo);
  if (validTo.getTime() < Date.now()) {
    f.warnings.push(`TLS_CERT: "${c.tlsCert}" expired on ${validTo.toISOString()}`);
  } else if (validTo.getTime() - Date.now() < 14 * 86_400_000) {
    f.warnings.push(`TLS_CERT: "${c.tlsCert}" expires on ${validTo.toISOString()}`);
  }
}

function checkCaFile(c: Config, f: Findings): void {
  if (c.upstreamCaFile === "") return;
  try {
    if (!readText(c.upstreamCaFile).includes("-----BEGIN CERTIFICATE-----")) {
      f.problems.push(`UPSTREAM_CA_FILE: "${c.upstreamCaFile}" holds no PEM certificate`);
    }
  } catch (err) {
    f.problems.push(`UPSTREAM_CA_FILE: cannot read "${c.upstreamCaFile}": ${message(err)}`);
  }
}

function checkAuthFile(c: Config, f: Findings): void {
  if (c.proxyAuthFile === "") return;
  let text: string;
  try {
    text = readText(c.proxyAuthFile);
  } catch (err) {
    f.problems.push(`PROXY_AUTH_FILE: cannot read "${c.proxyAuthFile}": ${message(err)}`);
    return;
  }
  try {
    parseHtpasswd(text, "PROXY_AUTH_FILE"); // as start-up does: bad lines and no users stop it
  } catch (err) {
    f.problems.push(message(err).split("\n")[0]);
  }
}

function checkFilterLists(c: Config, f: Findings): void {
  for (const location of c.filterLists) {
    if (/^https?:\/\//i.test(location)) continue; // fetched at start-up; a failure only warns
    const path = location.startsWith("file:") ? new URL(location).pathname : location;
    let text: string;
    try {
      text = readText(path);
    } catch (err) {
      f.problems.push(`FILTER_LISTS: cannot read "${location}": ${message(err)}`);
      continue;
    }
    const parsed = parseList(text, location);
    if (parsed.errorCount > 0) {
      const first = parsed.errors[0];
      f.warnings.push(
        `FILTER_LISTS: "${location}" has ${parsed.errorCount} bad line(s), skipped` +
          (first ? ` (first: line ${first.line}: ${first.reason})` : ""),
      );
    }
  }
}

/** LOG_FILE: an existing file must open for appending; a new one needs its directory. */
function checkLogFile(c: Config, f: Findings): void {
  if (c.logFile === "") return;
  try {
    const stat = Deno.statSync(c.logFile);
    if (stat.isDirectory) {
      f.problems.push(`LOG_FILE: "${c.logFile}" is a directory`);
      return;
    }
    Deno.openSync(c.logFile, { append: true }).close();
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      f.problems.push(`LOG_FILE: cannot open "${c.logFile}" for appending: ${message(err)}`);
      return;
    }
    const dir = dirname(c.logFile);
    try {
      if (!Deno.statSync(dir).isDirectory) throw new Error("not a directory");
    } catch (err) {
      f.problems.push(`LOG_FILE: cannot create "${c.logFile}": ${dir}: ${message(err)}`);
    }
  }
}

/** Every file check; adds to `f`. */
export function checkFiles(c: Config, f: Findings): void {
  checkTls(c, f);
  checkCaFile(c, f);
  checkAuthFile(c, f);
  checkFilterLists(c, f);
  checkLogFile(c, f);
}
