/** Small clients for end-to-end tests: curl and a fetch that goes through a proxy (raw TCP: rawhttp.ts). */

const dec = new TextDecoder();

export interface CurlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs curl with the arguments; never throws on curl's own exit codes. */
export async function curl(...args: string[]): Promise<CurlResult> {
  const out = await new Deno.Command("curl", { args: ["-sS", "--max-time", "30", ...args] })
    .output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** A fetch client whose requests go through the proxy at `proxyUrl` (HTTP_PROXY style). */
export function proxiedClient(proxyUrl: string, caCerts?: string[]): Deno.HttpClient {
  return Deno.createHttpClient({ proxy: { url: proxyUrl }, caCerts });
}
