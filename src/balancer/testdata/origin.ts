/**
 * A stand-alone origin for tests that must crash a backend for real
 * (SIGKILL): `deno run --allow-net origin.ts <port> <name>` answers every
 * request with `<name>` and `/health` with "ok".
 */
const [port, name] = Deno.args;
Deno.serve({ hostname: "127.0.0.1", port: Number(port), onListen() {} }, (req) => {
  if (new URL(req.url).pathname === "/health") return new Response("ok");
  return new Response(name, { headers: { "x-origin": name } });
});
