// `proxy` (TooTallNate's forward proxy, absolute-form requests and CONNECT):
// PORT to listen on (127.0.0.1). TARGET is unused: clients name the origin.
import http from "node:http";
import { createProxy } from "proxy";

const port = Number(process.env.PORT);
const server = createProxy(http.createServer());
server.listen(port, "127.0.0.1", () => {
  console.log(`proxy (forward) listening on http://127.0.0.1:${port}`);
});
