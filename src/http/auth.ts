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

/** The admin's HTML pages: the admin bearer token, or HTTP Basic admin:<admin token>. */
export const adminPage = [authenticate({ basic: true }), requireAdmin] as const;

/** Who may be named as the operator of a write action: what a log line can hold safely. */
const OPERATOR = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/;

/**
 * The break-glass credential: HTTP Basic with the operator's name as user and the ops token as
 * password. The name is not verified (everyone on call shares the token); it is what the audit
 * log records as who acted. A realm of its own, so a browser does not offer the admin's
 * credentials, which would be refused here.
 */
export function authenticateOps(opsToken: string): MiddlewareHandler<AppEnv> {
  const expected = digest(opsToken);
  return async (c, next) => {
    const basic = /^Basic\s+(\S+)\s*$/i.exec(c.req.header("authorization") ?? "");
    const decoded = basic ? Buffer.from(basic[1]!, "base64").toString() : "";
    const colon = decoded.indexOf(":");
    const operator = decoded.slice(0, Math.max(colon, 0));
    const valid = timingSafeEqual(digest(decoded.slice(colon + 1)), expected);
    if (colon <= 0 || !valid || !OPERATOR.test(operator)) {
      c.header("WWW-Authenticate", 'Basic realm="holdfast-ops", charset="UTF-8"');
      throw new HttpError(
        "unauthorized",
        "HTTP Basic with your name as user and HOLDFAST_OPS_TOKEN as password is required",
      );
    }
    c.set("operator", operator);
    await next();
  };
}
