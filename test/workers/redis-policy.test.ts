import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, it } from "vitest";
import { redisEvictionWarning } from "../../src/process/connections.ts";
import { REDIS_URL } from "../helpers/urls.ts";

let redis: Redis;
let original: string;
beforeAll(async () => {
  redis = new Redis(REDIS_URL);
  original = ((await redis.config("GET", "maxmemory-policy")) as string[])[1]!;
});
afterAll(async () => {
  await redis.config("SET", "maxmemory-policy", original);
  redis.disconnect();
});

it("warns at start when Redis may evict BullMQ's keys, and not when it may not", async () => {
  await redis.config("SET", "maxmemory-policy", "allkeys-lru");
  expect(await redisEvictionWarning(redis)).toMatch(
    /maxmemory-policy is allkeys-lru: BullMQ needs noeviction/,
  );
  await redis.config("SET", "maxmemory-policy", "noeviction");
  expect(await redisEvictionWarning(redis)).toBeUndefined();
});
