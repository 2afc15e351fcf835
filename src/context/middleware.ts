/**
 * One phase, two ways to run it: the proxy composes {@linkcode Wrapper}s
 * directly (src/pipeline), and `toMiddleware` turns the same wrapper into a
 * Hono middleware for anyone embedding a module in a Hono app. The logic of a
 * phase is written once, in its module.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import type { RequestContext, Wrapper } from "./mod.ts";

/** A Hono middleware running `wrapper` around the rest of the chain (ctx from `c.get("ctx")`). */
export function toMiddleware(wrapper: Wrapper): MiddlewareHandler {
  return async (c, next) => {
    const handler = wrapper(async (req) => {
      if (req !== c.req.raw) c.req.raw = req;
      await next();
      return c.res;
    });
    const res = await handler(c.req.raw, c.get("ctx") as RequestContext);
    if (res !== c.res) {
      // Hono merges the headers of a replaced response into the new one; a phase's answer
      // (413 after an aborted upload, say) must stand alone.
      c.res = undefined as unknown as Response;
      c.res = res;
    }
  };
}
