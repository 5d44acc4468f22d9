import { writeFileSync } from "node:fs";
import openapiTS, { astToString, COMMENT_HEADER } from "openapi-typescript";
import type { Database } from "../src/db/client.ts";
import { createApp } from "../src/http/app.ts";
import { createLogger } from "../src/logger.ts";
import type { RedisClient } from "../src/process/connections.ts";

/** Where `npm run openapi:types` writes the client's types; a test keeps it in step. */
export const TYPES_FILE = "src/client/schema.d.ts";

/**
 * The document GET /openapi.json serves, read through the app itself. Serving it touches
 * neither Postgres nor Redis, so the app gets handles that are never used.
 */
export async function servedDocument(): Promise<string> {
  const app = createApp({
    db: {} as Database,
    redis: {} as RedisClient,
    env: {
      HOLDFAST_ADMIN_TOKEN: "unused-admin-token",
      HOLDFAST_SERVICE_TOKEN: "unused-service-token",
      HOLDFAST_SWEEP_INTERVAL_MS: 30_000,
      HOLDFAST_BATCH_WINDOW_MS: 0,
      HOLDFAST_BATCH_MAX: 1,
      HOLDFAST_QUEUE_PREFIX: "{unused}",
    },
    logger: createLogger("silent"),
  });
  const res = await app.request("/openapi.json");
  if (res.status !== 200) throw new Error(`GET /openapi.json answered ${res.status}`);
  return res.text();
}

/** The TypeScript types openapi-typescript generates from a document. */
export async function generateTypes(document: string): Promise<string> {
  const ast = await openapiTS(JSON.parse(document));
  return `${COMMENT_HEADER}// Generated from GET /openapi.json by \`npm run openapi:types\`.\n\n${astToString(ast)}`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [command, out] = process.argv.slice(2);
  const document = await servedDocument();
  if (command === "types") writeFileSync(out ?? TYPES_FILE, await generateTypes(document));
  else if (command === "document" && out) writeFileSync(out, document);
  else if (command === "document") process.stdout.write(document);
  else throw new Error("usage: openapi-document.ts document [file] | types [file]");
}
