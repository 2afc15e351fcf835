/**
 * The one ordered list of a request's phases, in Pingora's order, and the
 * drivers built from it for every kind of request.
 *
 * Request filters come first (hygiene, client ACL, proxy auth, body limit,
 * rate limit, filter, target check), then the cache lookup, then what only
 * work for the upstream needs (admission, compression, the route to the
 * destination or the balancer). Each phase declares the kinds of request it
 * applies to; a kind that skips a phase does so by that declaration.
 *
 * Kinds:
 * - `http`: a request proxied to an origin (origin- or absolute-form);
 * - `hit`: an `http` request the cache answers fresh — it stops at the cache,
 *   so it passes exactly the phases before it (checked by
 *   {@linkcode checkPhaseList}: a hit is only known at the cache);
 * - `upgrade`: an `Upgrade:` request relayed to a backend (WebSocket);
 * - `connect`: a CONNECT tunnel, admitted or refused before it opens.
 *
 * The fast path: each request filter may say synchronously that it lets a
 * request through untouched (`passes`); the driver asks them in order and
 * enters the chain of wrappers at the first one that does not (that phase
 * then runs in full, the ones before it are done). A request every filter
 * passed reaches the cache directly, which answers a fresh in-memory hit
 * without a promise. It is generated from the same list: a phase without
 * `passes` simply always runs as a wrapper.
 *
 * @module
 */
import type { FreshHit } from "../cache/mod.ts";
import type {
  Handler,
  HitAnswer,
  RequestContext,
  RequestKind,
  RequestView,
  Wrapper,
} from "../context/mod.ts";

export type { RequestKind } from "../context/mod.ts";

/** Every kind of request, in the order the docs list them. */
export const KINDS: readonly RequestKind[] = ["http", "hit", "upgrade", "connect"];

const ALL = KINDS;

/** A phase's place in the list and the kinds it applies to. */
export interface PhaseDeclaration {
  readonly name: string;
  readonly kinds: readonly RequestKind[];
}

/**
 * The phases, in the order they run. Declared once; every driver below is
 * built from this list.
 */
export const PHASES = [
  { name: "hygiene", kinds: ALL },
  { name: "client-acl", kinds: ALL },
  { name: "auth", kinds: ALL },
  // Upgrade requests and CONNECT carry no body the proxy reads.
  { name: "body-limit", kinds: ["http", "hit"] },
  { name: "rate-limit", kinds: ALL },
  { name: "filter", kinds: ALL },
  // Upgrades go to BACKEND_SERVERS only (origin-form), so they have no target to check;
  // inside an intercepted tunnel the route checks the origin's address itself.
  { name: "target", kinds: ["http", "hit", "connect"] },
  { name: "cache", kinds: ["http", "hit"] },
  // A tunnel lives for hours: an in-flight slot would be held by an idle connection.
  { name: "admission", kinds: ["http", "upgrade"] },
  { name: "compression", kinds: ["http"] },
  // The end of the chain for kinds that reach an upstream; CONNECT's tunnel is the listener's.
  { name: "route", kinds: ["http", "upgrade"] },
] as const satisfies readonly PhaseDeclaration[];

export type PhaseName = (typeof PHASES)[number]["name"];

/** Where the cache sits: phases before it are request filters, those after it upstream work. */
const CACHE_AT = PHASES.findIndex((p) => p.name === "cache");

/** One phase as built for this configuration. */
export interface PhaseImpl {
  /** Wraps the rest of the chain (the route ignores `next`: it ends the chain). */
  readonly wrap: Wrapper;
  /** A different wrapper for some kinds (the target check of a CONNECT is not a URL check). */
  readonly byKind?: Partial<Record<RequestKind, Wrapper>>;
  /**
   * For phases before the cache: true when, for this request, `wrap` would call
   * `next(req, ctx)` unchanged and leave the response alone, decided
   * synchronously; the wrapper is then skipped. When it answers false the
   * wrapper runs next, so it must not count what the wrapper will count.
   */
  readonly passes?: (req: RequestView, ctx: RequestContext) => boolean;
  /** The cache only: a fresh in-memory hit answered synchronously, else undefined. */
  readonly hit?: (req: Request, ctx: RequestContext) => Response | undefined;
  /** The cache only: the fresh in-memory entry for a plain GET/HEAD, counting nothing. */
  readonly fresh?: (req: RequestView, ctx: Pick<RequestContext, "target">) => FreshHit | undefined;
  /** The cache only: `hit` without a Response, for the listener's hit path (see `Pipeline.answerHit`). */
  readonly answer?: (hit: FreshHit, req: RequestView, ctx: RequestContext) => HitAnswer | undefined;
}

/** The phases this configuration runs; a phase that is off is absent (or undefined). */
export type PhaseSet = Partial<Record<PhaseName, PhaseImpl | undefined>>;

/** The drivers, one per way a request enters the app. */
export interface Pipeline {
  /** `http` and `hit` requests: the fast path when every request filter passes, else the full chain. */
  http(req: Request, ctx: RequestContext): Response | Promise<Response>;
  /**
   * The listener's hit path, step one: the fresh in-memory entry a plain
   * GET/HEAD would be answered with if every request filter passes; counts
   * nothing (a miss costs one lookup, then the request goes the usual way).
   */
  freshHit(req: RequestView): FreshHit | undefined;
  /**
   * Step two: `http`'s fast path for that entry without a Request or a
   * Response — every request filter's `passes`, in order, then the cache's
   * answer. Undefined (nothing counted) when `http` would do anything else:
   * a filter that does not pass, a conditional request.
   */
  answerHit(req: RequestView, ctx: RequestContext, fresh: FreshHit): HitAnswer | undefined;
  /** `upgrade` requests; the route leaves a raw upgrade in `ctx.upgraded`. */
  upgrade: Handler;
  /** `connect` requests: resolves to {@linkcode ADMITTED} when the tunnel may open, else the refusal. */
  connect: Handler;
  /** The phase names each kind runs here, in order (for docs, stats and tests). */
  readonly plan: Readonly<Record<RequestKind, readonly PhaseName[]>>;
}

/** What `connect` answers when every phase let the tunnel through. */
export const ADMITTED: Response = new Response(null, { status: 200 });

const unrouted: Handler = (_req, ctx) =>
  Promise.reject(new Error(`no route phase ends the ${ctx.kind} chain`));
const admitted: Handler = () => Promise.resolve(ADMITTED);

/**
 * Checks the list's rules; throws naming the phase that breaks one. A phase
 * before the cache must apply to hits exactly when it applies to `http`
 * requests (a hit is only known at the cache); `hit` stops at the cache.
 */
export function checkPhaseList(list: readonly PhaseDeclaration[] = PHASES): void {
  const cacheAt = list.findIndex((p) => p.name === "cache");
  if (cacheAt < 0) throw new Error("the phase list has no cache phase");
  list.forEach((p, i) => {
    const http = p.kinds.includes("http"), hit = p.kinds.includes("hit");
    if (i < cacheAt && http !== hit) {
      throw new Error(`phase ${p.name} is before the cache: it must apply to hits as to http`);
    }
    if (i > cacheAt && hit) throw new Error(`phase ${p.name} is after the cache: hits stop there`);
  });
}

/** `wrappers[0]` runs first; `undefined` entries are phases that are off. */
export function compose(handler: Handler, ...wrappers: (Wrapper | undefined)[]): Handler {
  let h = handler;
  for (let i = wrappers.length - 1; i >= 0; i--) {
    const w = wrappers[i];
    if (w) h = w(h);
  }
  return h;
}

/** The chain of `kind` over the phases `from`..`to` (indices into PHASES) that are on. */
function chainOf(
  phases: PhaseSet,
  kind: RequestKind,
  end: Handler,
  from = 0,
  to = PHASES.length,
): Handler {
  const wrappers: Wrapper[] = [];
  for (let i = from; i < to; i++) {
    const decl: PhaseDeclaration = PHASES[i];
    const impl = phases[PHASES[i].name];
    if (impl === undefined || !decl.kinds.includes(kind)) continue;
    wrappers.push(impl.byKind?.[kind] ?? impl.wrap);
  }
  return compose(end, ...wrappers);
}

/** Builds the drivers of every kind from {@linkcode PHASES} and this configuration's phases. */
export function buildPipeline(phases: PhaseSet): Pipeline {
  checkPhaseList();
  // The request filters this configuration runs (they apply to http and hit alike), and for
  // each the chain from it on: a request whose filters passed up to it continues there.
  const passes: ((req: RequestView, ctx: RequestContext) => boolean)[] = [];
  const from: Handler[] = [];
  for (let i = 0; i < CACHE_AT; i++) {
    const decl: PhaseDeclaration = PHASES[i];
    const impl = phases[PHASES[i].name];
    if (impl === undefined || !decl.kinds.includes("http")) continue;
    // Without `passes` the phase always runs as a wrapper: the fast path stops before it.
    passes.push(impl.passes ?? never);
    from.push(chainOf(phases, "http", unrouted, i));
  }
  const n = passes.length;
  const fromCache = chainOf(phases, "http", unrouted, CACHE_AT);
  const hit = phases.cache?.hit;
  const fresh = phases.cache?.fresh;
  const answer = phases.cache?.answer;
  const noTarget = {} as const;

  const plan = {} as Record<RequestKind, PhaseName[]>;
  for (const kind of KINDS) {
    plan[kind] = PHASES.filter((p, i) =>
      phases[p.name] !== undefined && (p.kinds as readonly string[]).includes(kind) &&
      (kind !== "hit" || i <= CACHE_AT)
    ).map((p) => p.name);
  }

  return {
    http(req, ctx) {
      let i = 0;
      while (i < n && passes[i](req, ctx)) i++;
      if (i < n) return from[i](req, ctx);
      if (hit !== undefined) {
        const res = hit(req, ctx);
        if (res !== undefined) return res;
      }
      return fromCache(req, ctx);
    },
    freshHit(req) {
      // Before the filters no phase has set `ctx.target`: an origin-form request's key is its URL.
      return fresh?.(req, noTarget);
    },
    answerHit(req, ctx, found) {
      if (answer === undefined || ctx.target !== undefined) return undefined;
      for (let i = 0; i < n; i++) if (!passes[i](req, ctx)) return undefined;
      return answer(found, req, ctx);
    },
    upgrade: chainOf(phases, "upgrade", unrouted),
    connect: chainOf(phases, "connect", admitted),
    plan,
  };
}

const never = () => false;
