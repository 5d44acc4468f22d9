import type { Context, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";

/**
 * Refuses bodies over `maxSize` bytes. hono's bodyLimit starts by touching `c.req.raw.body`,
 * which makes @hono/node-server give up its direct read of the request and build a web
 * ReadableStream and a full Request for every POST (a fifth of the CPU of a purchase). A body
 * with a Content-Length, which is what clients send for JSON, is judged by the header: Node's
 * HTTP parser never delivers more bytes than it announces. A body without one (chunked, or a
 * Request built in-process) goes through hono's bodyLimit, which counts while it reads.
 */
export function limitBody(
  maxSize: number,
  onError: (c: Context) => Response | Promise<Response>,
): MiddlewareHandler {
  const counting = bodyLimit({ maxSize, onError });
  return async (c, next) => {
    // holdfast reads no body on these.
    if (c.req.method === "GET" || c.req.method === "HEAD") return next();
    const length = c.req.header("content-length");
    if (length === undefined || c.req.header("transfer-encoding") !== undefined)
      return counting(c, next);
    if (Number(length) > maxSize) return onError(c);
    await next();
  };
}
