/** A local HTTPS origin with the self-signed test certificate (tests/fixtures). */
const FIXTURES = new URL("../fixtures/", import.meta.url);

/** The CA that signed the test certificate: what clients trust. */
export const TEST_CA = Deno.readTextFileSync(new URL("ca.crt", FIXTURES));
export const TEST_CA_PATH = new URL("ca.crt", FIXTURES).pathname;
export const TEST_CERT = Deno.readTextFileSync(new URL("tls.crt", FIXTURES));
export const TEST_KEY = Deno.readTextFileSync(new URL("tls.key", FIXTURES));
export const TEST_CERT_PATH = new URL("tls.crt", FIXTURES).pathname;
export const TEST_KEY_PATH = new URL("tls.key", FIXTURES).pathname;

export function startTlsOrigin(body = "secret over tls") {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, cert: TEST_CERT, key: TEST_KEY, onListen() {} },
    () => new Response(body, { headers: { "x-origin": "tls" } }),
  );
  const port = (server.addr as Deno.NetAddr).port;
  return { port, url: `https://localhost:${port}`, close: () => server.shutdown() };
}
