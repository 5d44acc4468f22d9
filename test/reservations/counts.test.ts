import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DomainError } from "../../src/ledger/errors.ts";
import { DeferredCounts, holdsPlaced } from "../../src/metrics.ts";
import { placeHold } from "../../src/reservations/place-hold.ts";
import { applyWrites, type WriteCommand } from "../../src/writes/write-path.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { fundedAccount } from "../helpers/ledger.ts";

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t.drop();
});

const placed = async () => (await holdsPlaced.get()).values[0]?.value ?? 0;

describe("hold counts", () => {
  it("count a transaction's holds once it commits, and not at all if it rolls back", async () => {
    const id = await fundedAccount(t.db, "counts", 100);
    const before = await placed();
    const inTransaction = async (places: number, then: "commit" | "roll back") => {
      const counts = new DeferredCounts();
      await t.db.transaction(async (tx) => {
        counts.cover(tx);
        for (let i = 0; i < places; i++) await placeHold(tx, { accountId: id, amount: 5 });
        expect(await placed()).toBe(before);
        if (then === "roll back") throw new Error("roll back");
      });
      counts.commit();
    };
    await expect(inTransaction(1, "roll back")).rejects.toThrow("roll back");
    expect(await placed()).toBe(before);

    await inTransaction(2, "commit");
    expect(await placed()).toBe(before + 2);
    // Through a scope no DeferredCounts covers, a count is taken at once.
    await placeHold(t.db, { accountId: id, amount: 5 });
    expect(await placed()).toBe(before + 3);
  });

  it("count a write-path batch's holds once it commits: a batch that fails as a whole counts none", async () => {
    const id = await fundedAccount(t.db, "counts-batch", 100);
    const command = (effect: WriteCommand["effect"]): WriteCommand => ({
      scope: id,
      bucket: 0,
      order: id,
      status: 201,
      requestId: "counts",
      atomic: true,
      effect,
    });
    const place = command((tx) => placeHold(tx, { accountId: id, amount: 5 }));
    const before = await placed();
    await expect(
      applyWrites(t.db, [
        place,
        command(async () => {
          throw new Error("not a domain error: the whole batch rolls back");
        }),
      ]),
    ).rejects.toThrow("rolls back");
    expect(await placed()).toBe(before);
    await applyWrites(t.db, [place, place]);
    expect(await placed()).toBe(before + 2);
  });

  it("count none of a savepoint that rolls back inside a transaction that commits", async () => {
    const id = await fundedAccount(t.db, "counts-savepoint", 100);
    const before = await placed();
    const [outcome] = await applyWrites(t.db, [
      {
        scope: id,
        bucket: 0,
        order: id,
        status: 201,
        requestId: "counts",
        atomic: false,
        effect: async (tx) => {
          await placeHold(tx, { accountId: id, amount: 5 });
          throw new DomainError(
            "insufficient_funds",
            "refused after placing: the savepoint rolls back",
          );
        },
      },
    ]);
    expect(outcome!.response.status).toBe(422);
    expect(await placed()).toBe(before);
  });
});
