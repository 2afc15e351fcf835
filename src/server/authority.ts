/**
 * Parsing of request-target pieces a listener must validate itself:
 * the CONNECT authority (`host:port`, `[v6]:port`).
 *
 * @module
 */

export interface Authority {
  /** Host name or IP address, without IPv6 brackets. */
  readonly host: string;
  readonly port: number;
}

const HOST_NAME =
  /^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,62}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,62}[a-z0-9_])?)*\.?$/i;

/** Parses a CONNECT request-target; undefined when malformed. */
export function parseAuthority(target: string): Authority | undefined {
  let host: string;
  let portText: string;
  if (target.startsWith("[")) {
    const end = target.indexOf("]");
    if (end < 0 || target[end + 1] !== ":") return undefined;
    host = target.slice(1, end);
    portText = target.slice(end + 2);
    try {
      new URL(`http://[${host}]/`);
    } catch {
      return undefined;
    }
  } else {
    const colon = target.lastIndexOf(":");
    if (colon <= 0) return undefined;
    host = target.slice(0, colon);
    portText = target.slice(colon + 1);
    if (!HOST_NAME.test(host)) return undefined;
  }
  if (!/^\d{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port < 1 || port > 65535) return undefined;
  return { host: host.toLowerCase(), port };
}
