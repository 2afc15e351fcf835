// node-http-proxy as a reverse proxy: PORT to listen on (127.0.0.1), TARGET origin URL.
// Keep-alive agent to the origin, as a production setup would use.
import http from "node:http";
import httpProxy from "http-proxy";

const port = Number(process.env.PORT);
const target = process.env.TARGET;
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const proxy = httpProxy.createProxyServer({ target, agent });
proxy.on("error", (_err, _req, res) => {
  if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" });
  res.end("bad gateway\n");
});
http.createServer((req, res) => proxy.web(req, res)).listen(port, "127.0.0.1", () => {
  console.log(`http-proxy listening on http://127.0.0.1:${port} -> ${target}`);
});
