import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { placeHold } from "../../src/reservations/place-hold.ts";
import { createTestApp, SERVICE, type TestApp } from "../helpers/app.ts";
import { someoneWaitsOnALock } from "../helpers/db.ts";
import { expectLedgerConsistent, fundedAccount } from "../helpers/ledger.ts";

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  await expectLedgerConsistent(t.db.db);
  await t.close();
});

// Found by the chaos run (test/chaos), when a worker's batched settles locked an account and
// then the next hold of that account while a release locked its hold and then the account:
// Postgres aborted one of them, and the API answered 500 when it was the release. Any
// transaction can be a deadlock victim; the write path runs it again.
describe("a deadlock victim", () => {
  it("a release aborted as a deadlock victim is run again and answers 200, not 500", async () => {
    const account = await fundedAccount(t.db.db, "deadlock-1", 100);
    const { hold } = await placeHold(t.db.db, { accountId: account, amount: 10 });
    let release: Promise<{ status: number; text: string }> | undefined;
    // The other side: the account first, then the hold, the order of a batched settle.
    await t.db.sql.begin(async (tx) => {
      // Its own deadlock check waits 10 s, so the release (1 s, the default) is the victim.
      await tx`SET LOCAL deadlock_timeout = '10s'`;
      await tx`UPDATE accounts SET held = held WHERE id = ${account}`;
      release = t.call("POST", `/v1/holds/${hold.id}/release`, {
        token: SERVICE,
        body: { reason: "deadlock test" },
      });
      await someoneWaitsOnALock(t.db.sql);
      // The release holds the hold and waits for the account: this closes the cycle, until
      // Postgres aborts the release's transaction, which frees the hold for this one.
      await tx`UPDATE holds SET reason = reason WHERE id = ${hold.id}`;
    });
    const answer = await release!;
    expect(answer.status, answer.text).toBe(200);
    expect(JSON.parse(answer.text)).toMatchObject({ id: hold.id, status: "released" });
  });
});
