/**
 * Child processes for benchmarks: free ports, start with readiness check,
 * stderr/stdout tail for error messages, and stop (SIGTERM, then SIGKILL).
 *
 * @module
 */

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = l.addr as Deno.NetAddr;
  l.close();
  return port;
}

export interface StartOptions {
  /** Label used in messages, e.g. "nginx". */
  name: string;
  cmd: string;
  args: string[];
  env?: Record<string, string>;
  cwd?: string;
  /** Ready once 127.0.0.1:port answers HTTP on `path` (any status), or accepts TCP when path is omitted. */
  readyPort: number;
  readyPath?: string;
  /** Also wait until the output contains this (e.g. a start-up line printed once all threads listen). */
  readyText?: RegExp;
  /** Default 30 s: a cold `deno run` may compile for a while. */
  timeoutMs?: number;
}

export interface Proc {
  readonly name: string;
  readonly pid: number;
  /** Last few KiB of stdout+stderr. */
  outputTail(lines?: number): string;
  /** SIGTERM, then SIGKILL after 5 s; resolves when the process is gone. */
  stop(): Promise<void>;
}

/** Thrown when a process exits or never becomes ready; `tail` holds its last output lines. */
export class StartError extends Error {
  constructor(message: string, readonly tail: string) {
    super(message);
  }
}

export async function startProcess(opts: StartOptions): Promise<Proc> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(opts.cmd, {
      args: opts.args,
      env: opts.env,
      cwd: opts.cwd,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (err) {
    throw new StartError(`${opts.name}: cannot run ${opts.cmd}: ${(err as Error).message}`, "");
  }
  let output = "";
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      output = (output + text).slice(-16384);
    }
  };
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  let exited: Deno.CommandStatus | undefined;
  const status = child.status.then((s) => exited = s);

  const tail = (lines = 15) => output.trimEnd().split("\n").slice(-lines).join("\n");
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      if (!exited) {
        try {
          child.kill("SIGTERM");
        } catch { /* already gone */ }
        const timer = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch { /* already gone */ }
        }, 5000);
        await status;
        clearTimeout(timer);
      }
      await drained;
    })();
    return stopping;
  };

  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  while (true) {
    if (exited) {
      await drained;
      throw new StartError(
        `${opts.name} exited with code ${exited.code} before it was ready`,
        tail(),
      );
    }
    const printed = opts.readyText === undefined || opts.readyText.test(output);
    if (printed && await answers(opts.readyPort, opts.readyPath)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new StartError(`${opts.name} not ready on port ${opts.readyPort} in time`, tail());
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { name: opts.name, pid: child.pid, outputTail: tail, stop };
}

async function answers(port: number, path?: string): Promise<boolean> {
  if (path === undefined) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return true;
    } catch {
      return false;
    }
  }
  try {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, {
      signal: AbortSignal.timeout(2000),
    });
    await res.body?.cancel();
    return true;
  } catch {
    return false;
  }
}
