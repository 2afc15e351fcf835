/**
 * WebSocket pass-through for the Deno.serve listener (reverse mode): the
 * client's socket is upgraded once the backend accepted its own WebSocket,
 * then messages and closes are relayed both ways.
 *
 * Deno.serve does not hand out the raw connection, so this relays messages
 * rather than bytes; subprotocol negotiation is kept.
 *
 * @module
 */

/** True for a WebSocket upgrade request. */
export function isWebSocketUpgrade(req: Request): boolean {
  return req.headers.get("upgrade")?.toLowerCase() === "websocket";
}

/** Thrown when the backend refuses or does not answer the WebSocket handshake. */
export class WebSocketUpstreamError extends Error {
  readonly status = 502;
  readonly kind = "connect";
  readonly requestSent = false;
}

type Data = string | ArrayBufferLike | Blob | ArrayBufferView;

export async function relayWebSocket(
  clientReq: Request,
  target: URL,
  timeoutMs: number,
): Promise<Response> {
  const url = new URL(target);
  url.protocol = target.protocol === "https:" ? "wss:" : "ws:";
  const protocols = (clientReq.headers.get("sec-websocket-protocol") ?? "")
    .split(",").map((s) => s.trim()).filter(Boolean);
  const upstream = new WebSocket(url, protocols);
  upstream.binaryType = "arraybuffer";
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      upstream.close();
      reject(
        new WebSocketUpstreamError(`backend ${target.origin} did not accept the WebSocket in time`),
      );
    }, timeoutMs);
    upstream.onopen = () => {
      clearTimeout(timer);
      resolve();
    };
    upstream.onerror = () => {
      clearTimeout(timer);
      reject(new WebSocketUpstreamError(`backend ${target.origin} refused the WebSocket`));
    };
  });
  const { socket, response } = Deno.upgradeWebSocket(clientReq, {
    protocol: upstream.protocol || undefined,
  });
  socket.binaryType = "arraybuffer";
  const pending: Data[] = [];
  socket.onopen = () => {
    for (const d of pending.splice(0)) socket.send(d);
  };
  upstream.onmessage = (e) => {
    if (socket.readyState === WebSocket.OPEN) socket.send(e.data);
    else pending.push(e.data);
  };
  socket.onmessage = (e) => {
    if (upstream.readyState === WebSocket.OPEN) upstream.send(e.data);
  };
  const closeCode = (
    code: number,
  ) => (code === 1000 || (code >= 3000 && code <= 4999) ? code : 1000);
  socket.onclose = (e) => {
    if (upstream.readyState <= WebSocket.OPEN) upstream.close(closeCode(e.code), e.reason);
  };
  upstream.onclose = (e) => {
    if (socket.readyState <= WebSocket.OPEN) socket.close(closeCode(e.code), e.reason);
  };
  socket.onerror = () => upstream.close();
  upstream.onerror = () => socket.close(1011, "backend error");
  return response;
}
