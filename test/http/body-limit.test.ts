import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../src/logger.ts";
import { connectRedis } from "../../src/process/connections.ts";
import { type RunningServer, startServer } from "../../src/process/server.ts";
import { ADMIN, testEnv } from "../helpers/app.ts";
import { expectContract } from "../helpers/contract.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { REDIS_URL } from "../helpers/urls.ts";

// The in-process app.request() of the other tests builds Requests without a Content-Length;
// these go over a real socket, where the limit is judged by the header or by counting.

let db: TestDatabase;
let server: RunningServer;
let close: () => void;

beforeAll(async () => {
  db = await createTestDatabase();
  const redis = await connectRedis(REDIS_URL);
  close = () => redis.disconnect();
  server = await startServer({
    db: db.db,
    redis,
    env: testEnv(),
    logger: createLogger("silent"),
  });
});
afterAll(async () => {
  await server.close();
  close();
  await db.drop();
});

function post(body: string, framing: "content-length" | "chunked") {
  return new Promise<{ status: number; type: string | undefined; json: { code?: string } }>(
    (resolve, reject) => {
      const req = request(
        {
          host: "127.0.0.1",
          port: server.port,
          method: "POST",
          path: "/v1/accounts",
          headers: {
            authorization: `Bearer ${ADMIN}`,
            "content-type": "application/json",
            ...(framing === "content-length"
              ? { "content-length": Buffer.byteLength(body) }
              : { "transfer-encoding": "chunked" }),
          },
        },
        (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (chunk) => {
            text += chunk;
          });
          res.on("end", () => {
            const headers = new Headers();
            for (const [name, value] of Object.entries(res.headers))
              if (value !== undefined) headers.set(name, String(value));
            const status = res.statusCode ?? 0;
            expectContract("POST", "/v1/accounts", { status, headers, text }).then(
              () => resolve({ status, type: res.headers["content-type"], json: JSON.parse(text) }),
              reject,
            );
          });
        },
      );
      req.on("error", reject);
      if (framing === "chunked") {
        for (let i = 0; i < body.length; i += 8192) req.write(body.slice(i, i + 8192));
        req.end();
      } else req.end(body);
    },
  );
}

const accountCount = async () =>
  (await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM accounts WHERE kind = 'user'`)[0]!
    .n;

describe("request bodies over HTTP", () => {
  for (const framing of ["content-length", "chunked"] as const) {
    it(`a 70 KB body with ${framing} → 413 payload_too_large, nothing written`, async () => {
      const before = await accountCount();
      const body = JSON.stringify({ id: `big-${framing}`, metadata: { x: "y".repeat(70_000) } });
      const r = await post(body, framing);
      expect(r.status).toBe(413);
      expect(r.type).toBe("application/problem+json");
      expect(r.json.code).toBe("payload_too_large");
      expect(await accountCount()).toBe(before);
    });

    it(`a small body with ${framing} is read and applied`, async () => {
      const r = await post(JSON.stringify({ id: `small-${framing}` }), framing);
      expect(r.status).toBe(201);
    });
  }
});
