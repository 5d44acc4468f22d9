import { createHmac } from "node:crypto";

/**
 * `Holdfast-Signature` for a body holdfast POSTs (fulfilment calls, webhook events):
 * `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, one `v1` per secret that signs (a
 * webhook endpoint's new and, for a day after a rotation, old secret).
 */
export function holdfastSignature(secrets: string[], body: string, now = Date.now()): string {
  const t = Math.floor(now / 1000);
  const signatures = secrets.map(
    (secret) => `v1=${createHmac("sha256", secret).update(`${t}.${body}`).digest("hex")}`,
  );
  return [`t=${t}`, ...signatures].join(",");
}
