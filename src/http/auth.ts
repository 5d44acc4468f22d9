import { createHash, timingSafeEqual } from "node:crypto";
import type { MiddlewareHandler } from "hono";
import type { AppEnv, Role } from "./context.ts";
import { HttpError } from "./problem.ts";

const digest = (value: string) => createHash("sha256").update(value).digest();

/** The configured tokens' digests, computed once: a process has two. */
const expectedDigests = new Map<string, Buffer>();
const expectedDigest = (token: string) => {
  const known = expectedDigests.get(token);
  if (known) return known;
  const d = digest(token);
  expectedDigests.set(token, d);
  return d;
};

/** Compares digests, so neither the length nor the content of a token leaks through timing. */
export function roleForToken(
  token: string,
  tokens: { admin: string; service: string },
): Role | undefined {
  const given = digest(token);
  const admin = timingSafeEqual(given, expectedDigest(tokens.admin));
  const service = timingSafeEqual(given, expectedDigest(tokens.service));
  return admin ? "admin" : service ? "service" : undefined;
}

function tokenFrom(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (bearer) return bearer[1];
  const basic = /^Basic\s+(\S+)\s*$/i.exec(header);
  if (!basic) return undefined;
  // HTTP Basic with user "admin" and the token as password, so a browser can open /admin/queues.
  const decoded = Buffer.from(basic[1]!, "base64").toString();
  const colon = decoded.indexOf(":");
  return colon > 0 && decoded.slice(0, colon) === "admin" ? decoded.slice(colon + 1) : undefined;
}

/** Sets `role` from the Authorization header, or answers 401. */
export function authenticate(options: { basic?: boolean } = {}): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const header = c.req.header("authorization");
    const isBasic = header !== undefined && /^Basic\s/i.test(header);
    const token = isBasic && !options.basic ? undefined : tokenFrom(header);
    const { env } = c.get("deps");
    const role =
      token === undefined
        ? undefined
        : roleForToken(token, {
            admin: env.HOLDFAST_ADMIN_TOKEN,
            service: env.HOLDFAST_SERVICE_TOKEN,
          });
    if (!role) {
      if (options.basic) c.header("WWW-Authenticate", 'Basic realm="holdfast", charset="UTF-8"');
      else c.header("WWW-Authenticate", 'Bearer realm="holdfast"');
      throw new HttpError("unauthorized", "a valid bearer token is required");
    }
    c.set("role", role);
    await next();
  };
}

export const requireAdmin: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (c.get("role") !== "admin")
    throw new HttpError("forbidden", "this endpoint needs the admin token");
  await next();
};
