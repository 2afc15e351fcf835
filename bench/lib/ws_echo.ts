/**
 * A WebSocket echo origin for the websocket scenario, on npm `ws` (which sets
 * TCP_NODELAY, so no end of the benchmark waits out Nagle's delay):
 * `deno run -A bench/lib/ws_echo.ts PORT`. Echoes every message with its type;
 * no compression.
 *
 * @module
 */
import { type WebSocket, WebSocketServer } from "ws";

if (import.meta.main) {
  const port = Number(Deno.args[0]);
  const wss = new WebSocketServer({
    port,
    host: "127.0.0.1",
    perMessageDeflate: false,
    maxPayload: 64 * 1024 * 1024,
  });
  wss.on("connection", (socket: WebSocket) => {
    socket.on("message", (data: Uint8Array, binary: boolean) => socket.send(data, { binary }));
    socket.on("error", () => socket.terminate());
  });
  wss.on("listening", () => console.log(`ws echo listening on ${port}`));
}
