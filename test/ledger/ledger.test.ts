import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BUCKETS } from "../../src/db/schema/index.ts";
import { getAccount } from "../../src/ledger/account.ts";
import { createAccount } from "../../src/ledger/create-account.ts";
import { creditAccount } from "../../src/ledger/credit-account.ts";
import { DomainError } from "../../src/ledger/errors.ts";
import { bucketOf, bucketOfId, newIdIn } from "../../src/ledger/ids.ts";
import { createTestApp, type TestApp } from "../helpers/app.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";

const MAX = 9007199254740991;

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(() => t.drop());

async function counts() {
  const [row] = await t.sql`
    SELECT (SELECT count(*) FROM entries)::int AS entries,
           (SELECT count(*) FROM ledger_transactions)::int AS transactions,
           (SELECT sum(settled) FROM accounts WHERE kind = 'system')::text AS system_settled`;
  return row;
}

/** The DomainError a promise rejects with, or a failure if it resolves or throws anything else. */
async function domainError(promise: Promise<unknown>): Promise<DomainError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DomainError);
  return error as DomainError;
}

describe("accounts", () => {
  it("createAccount opens an empty user account", async () => {
    const account = await createAccount(t.db, { id: "alice", metadata: { tier: "gold" } });
    expect(account).toMatchObject({
      id: "alice",
      settled: 0,
      held: 0,
      available: 0,
      metadata: { tier: "gold" },
    });
    expect(new Date(account.createdAt).toISOString()).toBe(account.createdAt);
    expect(await getAccount(t.db, "alice")).toEqual(account);
  });

  it("opening an existing id: account_exists, the first account unchanged", async () => {
    await createAccount(t.db, { id: "twice" });
    const error = await domainError(createAccount(t.db, { id: "twice", metadata: { b: 2 } }));
    expect(error.code).toBe("account_exists");
    expect((await getAccount(t.db, "twice")).metadata).toBeNull();
  });

  it("refuses an id outside the user-account pattern before touching the database", async () => {
    await expect(createAccount(t.db, { id: "@mine" })).rejects.toThrow(TypeError);
    await expect(createAccount(t.db, { id: "a b" })).rejects.toThrow(TypeError);
  });

  it("getAccount of a missing account: account_not_found", async () => {
    expect((await domainError(getAccount(t.db, "nobody"))).code).toBe("account_not_found");
  });
});

describe("credits", () => {
  it("posts one balanced transaction from @issuance, in bob's bucket", async () => {
    await createAccount(t.db, { id: "bob" });
    const issuanceBefore = Number((await getAccount(t.db, "@issuance")).settled);
    const rowsBefore = await t.sql<{ bucket: number; settled: number }[]>`
      SELECT bucket, settled FROM accounts WHERE id = '@issuance' ORDER BY bucket`;

    const result = await creditAccount(t.db, { accountId: "bob", amount: 30, reason: "gift" });
    expect(result.account).toMatchObject({ id: "bob", settled: 30, held: 0, available: 30 });

    const entries = await t.sql<
      { account_id: string; amount: number; seq: number | null; settled_after: number | null }[]
    >`
      SELECT bucket, leg, account_id, amount, seq, settled_after FROM entries
       WHERE transaction_id = ${result.transactionId} ORDER BY account_id`;
    const bucket = bucketOf("bob");
    expect(bucketOfId(result.transactionId)).toBe(bucket);
    expect(entries).toEqual([
      { bucket, leg: 1, account_id: "@issuance", amount: -30, seq: null, settled_after: null },
      { bucket, leg: 0, account_id: "bob", amount: 30, seq: 1, settled_after: 30 },
    ]);
    const [txn] = await t.sql`
      SELECT kind, reason FROM ledger_transactions WHERE id = ${result.transactionId}`;
    expect(txn).toEqual({ kind: "credit", reason: "gift" });

    // Exactly the row of bob's bucket moved, by exactly the credit.
    const rowsAfter = await t.sql<{ bucket: number; settled: number }[]>`
      SELECT bucket, settled FROM accounts WHERE id = '@issuance' ORDER BY bucket`;
    const moved = rowsAfter.filter((s, i) => s.settled !== rowsBefore[i]!.settled);
    expect(moved).toEqual([{ bucket, settled: rowsBefore[bucket]!.settled - 30 }]);
    expect(rowsAfter).toHaveLength(BUCKETS);

    expect((await getAccount(t.db, "@issuance")).settled).toBe(issuanceBefore - 30);
  });

  it("a credit to a missing account: account_not_found, nothing written", async () => {
    const before = await counts();
    const error = await domainError(creditAccount(t.db, { accountId: "ghost", amount: 5 }));
    expect(error.code).toBe("account_not_found");
    expect(await counts()).toEqual(before);
  });

  it.each([
    ["a negative amount", "bob", -3],
    ["a zero amount", "bob", 0],
    ["a fractional amount", "bob", 1.5],
    ["NaN", "bob", Number.NaN],
    ["an amount past 2^53 − 1", "bob", MAX + 1],
    ["a system account", "@issuance", 3],
  ])("refuses %s before writing anything", async (_name, accountId, amount) => {
    const before = await counts();
    await expect(creditAccount(t.db, { accountId, amount })).rejects.toThrow(TypeError);
    expect(await counts()).toEqual(before);
  });

  it("a credit past 2^53 − 1: balance_limit_exceeded, nothing written", async () => {
    await createAccount(t.db, { id: "whale" });
    await creditAccount(t.db, { accountId: "whale", amount: MAX - 1 });
    const before = await counts();

    const error = await domainError(creditAccount(t.db, { accountId: "whale", amount: 2 }));
    expect(error.code).toBe("balance_limit_exceeded");
    expect(await counts()).toEqual(before);
    expect((await getAccount(t.db, "whale")).settled).toBe(MAX - 1);

    // Up to the limit exactly is fine.
    const last = await creditAccount(t.db, { accountId: "whale", amount: 1 });
    expect(last.account.settled).toBe(MAX);
  });

  it("40 concurrent credits of 1..40: settled 820, seq 1..40, running balances exact", async () => {
    await createAccount(t.db, { id: "busy" });
    const amounts = Array.from({ length: 40 }, (_, i) => i + 1);
    const results = await Promise.all(
      amounts.map((amount) => creditAccount(t.db, { accountId: "busy", amount })),
    );
    expect(new Set(results.map((r) => r.transactionId)).size).toBe(40);

    const account = await getAccount(t.db, "busy");
    expect(account).toMatchObject({ settled: 820, held: 0, available: 820 });
    const entries = await t.sql<{ seq: number; amount: number; settled_after: number }[]>`
      SELECT seq, amount, settled_after FROM entries WHERE account_id = 'busy' ORDER BY seq`;
    expect(entries.map((e) => e.seq)).toEqual(amounts);
    expect(entries.map((e) => e.amount).sort((a, b) => a - b)).toEqual(amounts);
    let running = 0;
    for (const e of entries) {
      running += e.amount;
      expect(e.settled_after).toBe(running);
    }
    const [row] = await t.sql`SELECT last_seq FROM accounts WHERE id = 'busy'`;
    expect(row!.last_seq).toBe(40);
  });

  it("over HTTP, a credit past 2^53 − 1 answers 422 balance_limit_exceeded", async () => {
    const app: TestApp = await createTestApp();
    try {
      await app.call("POST", "/v1/accounts", { body: { id: "whale" } });
      const full = await app.call("POST", "/v1/accounts/whale/credits", {
        key: "fill",
        body: { amount: MAX },
      });
      expect(full.status).toBe(201);
      expect(full.json.account.settled).toBe(MAX);

      const over = await app.call("POST", "/v1/accounts/whale/credits", {
        key: "over",
        body: { amount: 1 },
      });
      expect(over.status).toBe(422);
      expect(over.headers.get("content-type")).toBe("application/problem+json");
      expect(over.json.code).toBe("balance_limit_exceeded");
      const [row] = await app.db.sql`
        SELECT (SELECT settled FROM accounts WHERE id = 'whale') AS settled,
               (SELECT count(*) FROM entries WHERE account_id = 'whale')::int AS entries`;
      expect(row).toEqual({ settled: MAX, entries: 1 });
    } finally {
      await app.close();
    }
  });
});

describe("the database enforces the ledger's shape", () => {
  let someTransaction: string;
  beforeAll(async () => {
    await createAccount(t.db, { id: "carol" });
    someTransaction = (await creditAccount(t.db, { accountId: "carol", amount: 10 })).transactionId;
  });

  it.each([
    [
      "UPDATE entries",
      () => t.sql`UPDATE entries SET amount = amount + 1 WHERE account_id = 'carol'`,
    ],
    ["DELETE FROM entries", () => t.sql`DELETE FROM entries WHERE account_id = 'carol'`],
    ["TRUNCATE entries", () => t.sql`TRUNCATE entries`],
    [
      "UPDATE ledger_transactions",
      () => t.sql`UPDATE ledger_transactions SET reason = 'edited' WHERE id = ${someTransaction}`,
    ],
    [
      "DELETE FROM ledger_transactions",
      () => t.sql`DELETE FROM ledger_transactions WHERE id = ${someTransaction}`,
    ],
  ])("refuses %s (append-only)", async (_name, statement) => {
    await expect(statement()).rejects.toMatchObject({ code: "23001" });
    const [row] = await t.sql`
      SELECT (SELECT sum(amount) FROM entries WHERE account_id = 'carol')::int AS sum,
             (SELECT reason FROM ledger_transactions WHERE id = ${someTransaction}) AS reason`;
    expect(row).toEqual({ sum: 10, reason: null });
  });

  const carol = bucketOf("carol");

  it("refuses entries that do not sum to zero, in one statement", async () => {
    const id = newIdIn(carol);
    const before = await counts();
    await expect(
      t.sql.begin(async (sql) => {
        await sql`INSERT INTO ledger_transactions (bucket, id, kind) VALUES (${carol}, ${id}, 'adjustment')`;
        await sql`
          INSERT INTO entries (bucket, transaction_id, leg, account_id, amount, kind)
          VALUES (${carol}, ${id}, 0, 'carol', 5, 'adjustment'),
                 (${carol}, ${id}, 1, '@issuance', -4, 'adjustment')`;
      }),
    ).rejects.toMatchObject({ code: "23514" });
    expect(await counts()).toEqual(before);
  });

  it("refuses a transaction with a single entry", async () => {
    const id = newIdIn(carol);
    await expect(
      t.sql.begin(async (sql) => {
        await sql`INSERT INTO ledger_transactions (bucket, id, kind) VALUES (${carol}, ${id}, 'adjustment')`;
        await sql`
          INSERT INTO entries (bucket, transaction_id, leg, account_id, amount, kind)
          VALUES (${carol}, ${id}, 0, 'carol', 5, 'adjustment')`;
      }),
    ).rejects.toMatchObject({ code: "23514" });
  });

  it("refuses a later statement that adds to a balanced transaction", async () => {
    const id = newIdIn(carol);
    await expect(
      t.sql.begin(async (sql) => {
        await sql`INSERT INTO ledger_transactions (bucket, id, kind) VALUES (${carol}, ${id}, 'adjustment')`;
        await sql`
          INSERT INTO entries (bucket, transaction_id, leg, account_id, amount, kind)
          VALUES (${carol}, ${id}, 0, 'carol', 5, 'adjustment'),
                 (${carol}, ${id}, 1, '@issuance', -5, 'adjustment')`;
        await sql`
          INSERT INTO entries (bucket, transaction_id, leg, account_id, amount, kind)
          VALUES (${carol}, ${id}, 0, 'carol', 5, 'adjustment'),
                 (${carol}, ${id}, 1, '@issuance', -5, 'adjustment')`;
      }),
    ).rejects.toMatchObject({ code: "23505" });
  });

  it.each([
    ["settled below zero", "UPDATE accounts SET settled = -1 WHERE id = 'carol'"],
    ["held above settled", "UPDATE accounts SET held = 11 WHERE id = 'carol'"],
    ["held below zero", "UPDATE accounts SET held = -1 WHERE id = 'carol'"],
    ["settled past 2^53 − 1", `UPDATE accounts SET settled = ${MAX + 1} WHERE id = 'carol'`],
    ["a system account row with a hold", "UPDATE accounts SET held = 5 WHERE id = '@revenue'"],
    [
      "a user account with an @ id",
      "INSERT INTO accounts (bucket, id, kind) VALUES (0, '@mine', 'user')",
    ],
    [
      "a user account outside its bucket",
      `INSERT INTO accounts (bucket, id, kind) VALUES (${(bucketOf("dave") + 1) % BUCKETS}, 'dave', 'user')`,
    ],
  ])("refuses %s (CHECK)", async (_name, statement) => {
    await expect(t.sql.unsafe(statement)).rejects.toMatchObject({ code: "23514" });
    const [row] = await t.sql`SELECT settled, held FROM accounts WHERE id = 'carol'`;
    expect(row).toEqual({ settled: 10, held: 0 });
  });
});
