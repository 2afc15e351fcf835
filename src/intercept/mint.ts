/**
 * Leaf certificates for intercepted names, signed by the local CA.
 *
 * One key pair serves every leaf of this process (generated at start,
 * never written anywhere), so minting is one signature, not a key
 * generation. Leaves are short-lived (7 days, backdated an hour for clock
 * skew), cached in memory per name with their ready TLS context, renewed a
 * day before they expire; concurrent first requests for one name share one
 * mint.
 *
 * @module
 */
import * as x509 from "@peculiar/x509";
import tls from "node:tls";
import { isIP } from "node:net";
import { EC_P256, type LocalCa, randomSerial } from "./ca.ts";

const DAY = 86_400_000;
export const LEAF_VALIDITY_MS = 7 * DAY;
const BACKDATE_MS = 3600_000;
/** A cached leaf closer than this to its end is minted again. */
const RENEW_BEFORE_MS = DAY;

/** A minted leaf, ready for a TLS server. */
export interface Leaf {
  readonly name: string;
  readonly certPem: string;
  readonly context: tls.SecureContext;
  readonly notAfter: number;
}

export interface MinterOptions {
  ca: LocalCa;
  /** Names kept in memory (least recently used dropped first). */
  maxEntries?: number;
  now?: () => number;
}

export class LeafMinter {
  readonly #ca: LocalCa;
  readonly #max: number;
  readonly #now: () => number;
  readonly #leaves = new Map<string, Leaf>();
  readonly #pending = new Map<string, Promise<Leaf>>();
  #keys: Promise<{ keys: CryptoKeyPair; pem: string }> | undefined;
  #aki: Promise<x509.AuthorityKeyIdentifierExtension> | undefined;
  /** Certificates signed so far. */
  minted = 0;
  /** Leaves served from memory. */
  reused = 0;
  /** Total time spent minting, in ms (for the average in /proxy-stats). */
  mintMs = 0;

  constructor(options: MinterOptions) {
    this.#ca = options.ca;
    this.#max = options.maxEntries ?? 10_000;
    this.#now = options.now ?? Date.now;
  }

  get cached(): number {
    return this.#leaves.size;
  }

  /** The leaf for `name` (a host name or an IP address), minted at most once at a time. */
  leaf(name: string): Promise<Leaf> {
    name = name.toLowerCase();
    const cached = this.#leaves.get(name);
    if (cached && cached.notAfter - this.#now() > RENEW_BEFORE_MS) {
      // Re-inserted so the map's order is least recently used first.
      this.#leaves.delete(name);
      this.#leaves.set(name, cached);
      this.reused++;
      return Promise.resolve(cached);
    }
    const pending = this.#pending.get(name);
    if (pending) {
      this.reused++;
      return pending;
    }
    const minting = this.#mint(name).finally(() => this.#pending.delete(name));
    this.#pending.set(name, minting);
    return minting;
  }

  async #mint(name: string): Promise<Leaf> {
    const started = performance.now();
    this.#keys ??= leafKeys();
    this.#aki ??= x509.AuthorityKeyIdentifierExtension.create(this.#ca.cert);
    const [{ keys, pem: keyPem }, aki] = await Promise.all([this.#keys, this.#aki]);
    const now = this.#now();
    const notAfter = Math.min(now + LEAF_VALIDITY_MS, this.#ca.cert.notAfter.getTime());
    const ip = isIP(name) !== 0;
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      // CN is limited to 64 characters; the SAN is what clients check anyway.
      subject: name.length <= 64 ? [{ CN: [name] }] : [{ O: ["proxy interception"] }],
      issuer: this.#ca.cert.subjectName,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(notAfter),
      signingKey: this.#ca.key,
      publicKey: keys.publicKey,
      signingAlgorithm: this.#ca.signingAlgorithm,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension([{ type: ip ? "ip" : "dns", value: name }]),
        aki,
      ],
    });
    const certPem = cert.toString("pem");
    const context = tls.createSecureContext({
      cert: `${certPem}\n${this.#ca.certPem}\n`,
      key: keyPem,
    });
    const leaf: Leaf = { name, certPem, context, notAfter };
    this.#leaves.delete(name);
    this.#leaves.set(name, leaf);
    if (this.#leaves.size > this.#max) {
      this.#leaves.delete(this.#leaves.keys().next().value!);
    }
    this.minted++;
    this.mintMs += performance.now() - started;
    return leaf;
  }
}

async function leafKeys(): Promise<{ keys: CryptoKeyPair; pem: string }> {
  const keys = await crypto.subtle.generateKey(EC_P256, true, ["sign", "verify"]);
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", keys.privateKey);
  return { keys, pem: x509.PemConverter.encode(pkcs8, "PRIVATE KEY") };
}
