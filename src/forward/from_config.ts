/**
 * The upstream clients as the configuration asks for them: one for the
 * backends (the operator's own, not address-checked) and one for forward
 * proxying, which checks the address it actually connected to (DNS
 * rebinding cannot bypass it).
 *
 * @module
 */
import type { Config } from "../config/mod.ts";
import type { AddressPolicy } from "../security/mod.ts";
import { mergeFamilies, type StatsSource, withLabels } from "../stats/mod.ts";
import { createForwarder, type Forwarder } from "./forwarder.ts";

export interface Upstream extends StatsSource {
  /** To BACKEND_SERVERS. */
  readonly reverse: Forwarder;
  /** To absolute-form destinations (SSRF-checked). */
  readonly forward: Forwarder;
  /** This proxy's Via token (a request carrying it already passed here: a loop). */
  readonly via: string;
  /** UPSTREAM_CA_FILE's certificates, for health checks too. */
  readonly caCerts?: string[];
  close(): Promise<void>;
}

export function upstreamFromConfig(
  config: Config,
  o: { via: string; checkAddress: AddressPolicy },
): Upstream {
  const caCerts = config.upstreamCaFile ? [readCaFile(config.upstreamCaFile)] : undefined;
  const options = {
    caCerts,
    connectTimeoutMs: config.connectionTimeout,
    responseTimeoutMs: config.connectionTimeout,
    idleTimeoutMs: config.upstreamIdleTimeout,
    maxIdlePerOrigin: config.upstreamKeepalive,
    via: o.via,
  };
  const reverse = createForwarder(options);
  const forward = createForwarder({ ...options, checkAddress: o.checkAddress });
  return {
    name: "upstream",
    reverse,
    forward,
    via: o.via,
    caCerts,
    snapshot: () => ({ ...reverse.snapshot(), forward_proxy: forward.snapshot() }),
    metrics: () =>
      mergeFamilies([
        ...withLabels(reverse.metrics(), { role: "reverse" }),
        ...withLabels(forward.metrics(), { role: "forward" }),
      ]),
    async close() {
      await forward.close();
      await reverse.close();
    },
  };
}

/** Reads UPSTREAM_CA_FILE; a missing or non-PEM file stops start-up with one line. */
function readCaFile(path: string): string {
  let pem: string;
  try {
    pem = Deno.readTextFileSync(path);
  } catch (err) {
    throw new Error(`UPSTREAM_CA_FILE: cannot read "${path}": ${(err as Error).message}`);
  }
  if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
    throw new Error(`UPSTREAM_CA_FILE: "${path}" holds no PEM certificate`);
  }
  return pem;
}
