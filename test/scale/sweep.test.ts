import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getHold } from "../../src/reservations/hold.ts";
import { placeHold } from "../../src/reservations/place-hold.ts";
import { connectProducer, type Producer } from "../../src/workers/producer.ts";
import { expireJobId } from "../../src/workers/queues.ts";
import { sweepHolds } from "../../src/workers/sweep-holds.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { expectLedgerConsistent, fundedAccount } from "../helpers/ledger.ts";
import { REDIS_URL } from "../helpers/urls.ts";
import { deleteKeysUnder, testPrefix } from "../helpers/workers.ts";

// The sweep on Citus. Found by the chaos run on Citus (test/scale/chaos.test.ts): after the
// Redis wipe, holds whose expire jobs had gone stayed pending for good, as every sweep failed
// with "could not run distributed query with FOR UPDATE/SHARE commands": its bucket set, a
// subquery, did not let Citus route the locking read to the one shard it is about.

let db: TestDatabase;
let producer: Producer;
const prefix = testPrefix();

beforeAll(async () => {
  db = await createTestDatabase();
  producer = await connectProducer(REDIS_URL, prefix);
});

afterAll(async () => {
  await producer?.close();
  const redis = new Redis(REDIS_URL);
  await deleteKeysUnder(redis, prefix).finally(() => redis.disconnect());
  await db?.drop();
});

describe("the sweep on Citus", () => {
  it("expires an overdue hold that has no expire job, and reschedules a pending one's", async () => {
    await fundedAccount(db.db, "sweep-due", 100);
    await fundedAccount(db.db, "sweep-later", 100);
    // No job is scheduled for either: as after a Redis wipe.
    const due = await placeHold(db.db, { accountId: "sweep-due", amount: 10, expiresInSeconds: 1 });
    const later = await placeHold(db.db, { accountId: "sweep-later", amount: 10 });
    await new Promise((r) => setTimeout(r, 1500));

    const result = await sweepHolds({ db: db.db, queues: producer.queues, fulfilment: false });

    expect(result.expired).toBe(1);
    expect((await getHold(db.db, due.hold.id))?.status).toBe("expired");
    expect((await getHold(db.db, later.hold.id))?.status).toBe("pending");
    expect(result.rescheduled).toBe(1);
    expect(await producer.queues.expire.getJob(expireJobId(later.hold.id))).toBeDefined();
    await expectLedgerConsistent(db.db);
  });
});
