// The receiver README.md shows ("Events and webhooks"), word for word: the webhook tests and the
// chaos run's subscriber check every signature with it, and a test keeps the two the same.
import { createHmac, timingSafeEqual } from "node:crypto";

export function verifyHoldfast(rawBody: string, header: string, secret: string, toleranceS = 300) {
  const parts = header.split(",");
  const t = Number(parts.find((p) => p.startsWith("t="))?.slice(2));
  if (!Number.isInteger(t) || Math.abs(Date.now() / 1000 - t) > toleranceS) return false;
  const expected = createHmac("sha256", secret).update(`${t}.${rawBody}`).digest();
  return parts
    .filter((p) => p.startsWith("v1="))
    .some((p) => {
      const given = Buffer.from(p.slice(3), "hex");
      return given.length === expected.length && timingSafeEqual(given, expected);
    });
}
