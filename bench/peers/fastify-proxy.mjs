// fastify + @fastify/http-proxy (undici keep-alive pool to the origin):
// PORT to listen on (127.0.0.1), TARGET origin URL.
import Fastify from "fastify";
import proxy from "@fastify/http-proxy";

const port = Number(process.env.PORT);
const target = process.env.TARGET;
const app = Fastify({ logger: false });
await app.register(proxy, { upstream: target });
await app.listen({ port, host: "127.0.0.1" });
console.log(`fastify-http-proxy listening on http://127.0.0.1:${port} -> ${target}`);
