/**
 * The local certificate authority of TLS interception: created once by
 * `proxy ca` (ECDSA P-256, ten years), kept as two PEM files in
 * TLS_INTERCEPT_CA_DIR, loaded by `proxy serve` when TLS_INTERCEPT=on.
 *
 * `ca.pem` is public (clients trust it); `ca-key.pem` is secret (mode 0600,
 * in a 0700 directory). Neither is ever overwritten: a second `proxy ca`
 * reports the existing CA, so a CA clients already trust cannot be replaced
 * by accident.
 *
 * @module
 */
import * as x509 from "@peculiar/x509";
import { join } from "node:path";

x509.cryptoProvider.set(crypto);

/** ECDSA P-256 with SHA-256: small keys, fast signatures, accepted by every client. */
export const EC_P256 = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const RSA_SHA256 = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" } as const;

export const CA_CERT_FILE = "ca.pem";
export const CA_KEY_FILE = "ca-key.pem";
const CA_YEARS = 10;

/** A loaded CA: what leaves are signed with. */
export interface LocalCa {
  readonly cert: x509.X509Certificate;
  readonly certPem: string;
  readonly key: CryptoKey;
  /** The signature algorithm that fits the key (ECDSA P-256 or RSA, SHA-256). */
  readonly signingAlgorithm: EcdsaParams & EcKeyImportParams | RsaHashedImportParams;
  readonly certPath: string;
  readonly keyPath: string;
}

/** A user-facing failure around the CA; its message is one line naming the fix. */
export class CaError extends Error {}

/**
 * The per-user data directory (XDG on Unix, %LOCALAPPDATA% on Windows), used
 * when TLS_INTERCEPT_CA_DIR is empty.
 */
export function defaultCaDir(env: (name: string) => string | undefined = Deno.env.get): string {
  if (Deno.build.os === "windows") {
    const base = env("LOCALAPPDATA") ?? join(env("USERPROFILE") ?? ".", "AppData", "Local");
    return join(base, "proxy");
  }
  const xdg = env("XDG_DATA_HOME");
  if (xdg) return join(xdg, "proxy");
  const home = env("HOME");
  if (!home) throw new CaError("TLS_INTERCEPT_CA_DIR: HOME is not set; give the directory");
  return join(home, ".local", "share", "proxy");
}

export interface CreatedCa {
  certPath: string;
  keyPath: string;
  /** False when a CA was already there (nothing was written). */
  created: boolean;
}

/** Creates the CA in `dir` unless one is there; never overwrites either file. */
export async function createCa(dir: string, now = new Date()): Promise<CreatedCa> {
  const certPath = join(dir, CA_CERT_FILE);
  const keyPath = join(dir, CA_KEY_FILE);
  const [hasCert, hasKey] = await Promise.all([exists(certPath), exists(keyPath)]);
  if (hasCert && hasKey) return { certPath, keyPath, created: false };
  if (hasCert || hasKey) {
    throw new CaError(
      `TLS_INTERCEPT_CA_DIR: ${dir} holds ${hasCert ? CA_CERT_FILE : CA_KEY_FILE} without ${
        hasCert ? CA_KEY_FILE : CA_CERT_FILE
      }; move it away (it is never overwritten) and run proxy ca again`,
    );
  }
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const keys = await crypto.subtle.generateKey(EC_P256, true, ["sign", "verify"]);
  const host = Deno.hostname();
  const stamp = now.toISOString().slice(0, 10);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    // The host and date tell several proxies' CAs apart in a trust store.
    name: [
      { CN: [`proxy interception CA (${host}, ${stamp})`] },
      { O: ["proxy (local TLS interception)"] },
    ],
    notBefore: new Date(now.getTime() - 3600_000),
    notAfter: new Date(
      Date.UTC(now.getUTCFullYear() + CA_YEARS, now.getUTCMonth(), now.getUTCDate()),
    ),
    keys,
    signingAlgorithm: EC_P256,
    extensions: [
      // pathLen 0: the CA signs leaves only, never another CA.
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", keys.privateKey);
  // The key first, created exclusively with 0600: a racing second `proxy ca` fails here.
  await Deno.writeTextFile(keyPath, x509.PemConverter.encode(pkcs8, "PRIVATE KEY") + "\n", {
    mode: 0o600,
    createNew: true,
  });
  await Deno.writeTextFile(certPath, cert.toString("pem") + "\n", { mode: 0o644, createNew: true });
  return { certPath, keyPath, created: true };
}

/** Loads the CA from `dir`; a missing or unusable CA is a one-line error naming `proxy ca`. */
export async function loadCa(dir: string): Promise<LocalCa> {
  const certPath = join(dir, CA_CERT_FILE);
  const keyPath = join(dir, CA_KEY_FILE);
  let certPem: string;
  let keyPem: string;
  try {
    [certPem, keyPem] = await Promise.all([
      Deno.readTextFile(certPath),
      Deno.readTextFile(keyPath),
    ]);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new CaError(
        `TLS_INTERCEPT=on needs a CA, and ${dir} has none: run "proxy ca --dir ${dir}" ` +
          `(or set TLS_INTERCEPT_CA_DIR), then trust its ca.pem on the clients`,
      );
    }
    throw new CaError(`TLS_INTERCEPT_CA_DIR: cannot read the CA in ${dir}: ${errText(err)}`);
  }
  let cert: x509.X509Certificate;
  try {
    cert = new x509.X509Certificate(certPem);
  } catch (err) {
    throw new CaError(
      `TLS_INTERCEPT_CA_DIR: ${certPath} is not a PEM certificate: ${errText(err)}`,
    );
  }
  const basic = cert.getExtension(x509.BasicConstraintsExtension);
  if (!basic?.ca) {
    throw new CaError(`TLS_INTERCEPT_CA_DIR: ${certPath} is not a CA certificate (CA:TRUE)`);
  }
  const publicAlg = cert.publicKey.algorithm as EcKeyAlgorithm | RsaHashedKeyAlgorithm;
  const signingAlgorithm = publicAlg.name === "ECDSA"
    ? { ...EC_P256, namedCurve: (publicAlg as EcKeyAlgorithm).namedCurve }
    : { ...RSA_SHA256 };
  let key: CryptoKey;
  try {
    const der = x509.PemConverter.decodeFirst(keyPem);
    key = await crypto.subtle.importKey("pkcs8", der, signingAlgorithm, false, ["sign"]);
  } catch (err) {
    throw new CaError(
      `TLS_INTERCEPT_CA_DIR: ${keyPath} is not a PKCS#8 key for ${certPath}: ${errText(err)}`,
    );
  }
  return { cert, certPem: cert.toString("pem"), key, signingAlgorithm, certPath, keyPath };
}

/** Who besides the owner can read the key file, as a warning; undefined when nobody. */
export async function keyExposure(keyPath: string): Promise<string | undefined> {
  if (Deno.build.os === "windows") return undefined;
  const { mode } = await Deno.stat(keyPath);
  if (mode === null || (mode & 0o077) === 0) return undefined;
  return `${keyPath} is readable by others (mode ${
    (mode & 0o777).toString(8)
  }): anyone who reads it can impersonate every site to clients trusting the CA; chmod 600 it`;
}

/** SHA-256 of the CA's SubjectPublicKeyInfo, base64: Chromium's --ignore-certificate-errors-spki-list. */
export async function spkiSha256(certPem: string): Promise<string> {
  const cert = new x509.X509Certificate(certPem);
  const digest = await crypto.subtle.digest("SHA-256", cert.publicKey.rawData);
  return btoa(String.fromCharCode(...new Uint8Array(digest)));
}

/** A positive 128-bit serial number, as hex. */
export function randomSerial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] &= 0x7f;
  bytes[0] |= 0x01; // no leading zero byte, so DER keeps all 16
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
