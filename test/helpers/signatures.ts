import { createHmac, timingSafeEqual } from "node:crypto";

/**
 * Checks a Holdfast-Signature as a webhook receiver would: one of its `v1` values is the
 * HMAC-SHA256 of "<t>.<body>" under `secret` (README, "Events and webhooks").
 */
export function signedWith(secret: string, header: string, body: string): boolean {
  const parts = header.split(",");
  const t = parts.find((p) => p.startsWith("t="))?.slice(2);
  const expected = createHmac("sha256", secret).update(`${t}.${body}`).digest();
  return parts
    .filter((p) => p.startsWith("v1="))
    .some((p) => {
      const given = Buffer.from(p.slice(3), "hex");
      return given.length === expected.length && timingSafeEqual(given, expected);
    });
}
