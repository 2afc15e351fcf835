/**
 * A stand-alone origin for tests that must crash a backend for real
 * (SIGKILL): `deno run --allow-net origin.ts <port> <name>` answers every
 * request with `<name>` and `/health` with "ok". Prints `listening on <port>` once it does;
 * a port in use makes it exit with an error.
 */
const [port, name] = Deno.args;
// The line tells the parent that this process (not another) listens on the port.
Deno.serve({
  hostname: "127.0.0.1",
  port: Number(port),
  onListen: () => console.log(`listening on ${port}`),
}, (req) => {
  if (new URL(req.url).pathname === "/health") return new Response("ok");
  return new Response(name, { headers: { "x-origin": name } });
});
