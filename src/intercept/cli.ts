/**
 * `proxy ca [--dir DIR]`: creates the interception CA once and tells how to
 * trust it.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { CaError, createCa, defaultCaDir, spkiSha256 } from "./ca.ts";

export const CA_HELP = `proxy ca — create the local CA for TLS interception (TLS_INTERCEPT=on)

USAGE
  proxy ca [--dir DIR]

  Creates an ECDSA P-256 certificate authority valid for ten years in DIR
  (default TLS_INTERCEPT_CA_DIR, else $XDG_DATA_HOME/proxy or ~/.local/share/proxy):
    ca.pem       the certificate clients trust (public)
    ca-key.pem   its private key, mode 0600 (secret: whoever reads it can impersonate
                 any site to the clients that trust ca.pem)
  An existing CA is never overwritten; running proxy ca again prints its path.
  To rotate, move both files away, run proxy ca, trust the new ca.pem, restart.

OPTIONS
  --dir DIR    where the CA lives (overrides TLS_INTERCEPT_CA_DIR)
  --help, -h   this text

EXIT STATUS
  0   the CA exists (created now or before)
  2   bad flag, or the CA cannot be created (the reason in one line)
`;

/** How to make clients trust `certPath`, one recipe per client family. */
export function trustSteps(certPath: string, spki: string): string {
  return `Trust it on the clients you administer (only those; see SECURITY.md):
  Debian/Ubuntu   sudo cp ${certPath} /usr/local/share/ca-certificates/proxy-ca.crt && sudo update-ca-certificates
  macOS           sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain ${certPath}
  Windows         certutil -addstore -f Root ${certPath}   (an administrator prompt)
  Firefox         Settings > Privacy & Security > Certificates > View Certificates > Authorities > Import
  Node.js         export NODE_EXTRA_CA_CERTS=${certPath}
  Python (pip)    export PIP_CERT=${certPath}   (requests: REQUESTS_CA_BUNDLE=${certPath})
  npm             npm config set cafile ${certPath}
  curl            curl --cacert ${certPath} -x http://PROXY:PORT https://example.com/
  Chromium        --ignore-certificate-errors-spki-list=${spki}
Then start the proxy with TLS_INTERCEPT=on (and TLS_INTERCEPT_CA_DIR if not the default).`;
}

export async function runCa(args: string[]): Promise<number> {
  let dir: string;
  try {
    const { values } = parseArgs({
      args,
      options: { dir: { type: "string" }, help: { type: "boolean", short: "h" } },
      strict: true,
      allowPositionals: false,
    });
    if (values.help) {
      console.log(CA_HELP);
      return 0;
    }
    dir = values.dir || Deno.env.get("TLS_INTERCEPT_CA_DIR") || defaultCaDir();
  } catch (err) {
    console.error(`proxy ca: ${(err as Error).message} (see proxy ca --help)`);
    return 2;
  }
  try {
    const made = await createCa(dir);
    const spki = await spkiSha256(await Deno.readTextFile(made.certPath));
    console.log(
      made.created
        ? `Created the interception CA: ${made.certPath} (key ${made.keyPath}, mode 0600)`
        : `A CA is already there, left as it is: ${made.certPath}`,
    );
    console.log(trustSteps(made.certPath, spki));
    return 0;
  } catch (err) {
    const message = err instanceof CaError
      ? err.message
      : `cannot create the CA in ${dir}: ${(err as Error).message}`;
    console.error(`proxy ca: ${message}`);
    return 2;
  }
}
