import { z } from "@hono/zod-openapi";
import { ENTRY_KINDS, MAX_AMOUNT } from "../db/schema/index.ts";
import { decodeNumericCursor } from "../ledger/cursor.ts";
import { USER_ACCOUNT_ID } from "../ledger/ids.ts";

/** Coins: a JSON integer in [1, 2^53 − 1]. Strings, fractions and larger numbers are refused. */
export const Amount = z
  .number()
  .int()
  .min(1)
  .max(MAX_AMOUNT)
  .openapi({ example: 20, description: "Coins, an integer in [1, 2^53 − 1]" });

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Postgres stores neither U+0000 (in text or jsonb) nor, in jsonb, an unpaired UTF-16
 * surrogate; JSON can spell both. Refused here, they are a 400 rather than a 500 from SQL.
 */
export const storable = (s: string): boolean => !s.includes("\u0000") && !LONE_SURROGATE.test(s);
const UNSTORABLE = "must not contain U+0000 or an unpaired surrogate";

/** A free-text field of 1 to `max` characters. */
export const Text = (max: number) => z.string().min(1).max(max).refine(storable, UNSTORABLE);

/** Deep enough for any real metadata; much deeper overflows JSON.stringify's recursion. */
export const MAX_METADATA_DEPTH = 32;

function metadataProblem(value: unknown, depth: number): string | undefined {
  if (typeof value === "string") return storable(value) ? undefined : `strings ${UNSTORABLE}`;
  if (value === null || typeof value !== "object") return undefined;
  if (depth > MAX_METADATA_DEPTH) return `at most ${MAX_METADATA_DEPTH} levels of nesting`;
  for (const [k, v] of Object.entries(value)) {
    if (!storable(k)) return `keys ${UNSTORABLE}`;
    const problem = metadataProblem(v, depth + 1);
    if (problem) return problem;
  }
  return undefined;
}

export const Metadata = z
  .record(z.string().min(1).max(64), z.unknown())
  .refine((m) => Object.keys(m).length <= 50, "at most 50 keys")
  .superRefine((m, ctx) => {
    const problem = metadataProblem(m, 1);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  })
  // Not a registered component: zod-to-openapi renders a registered schema's .nullable() as
  // a bare $ref (and makes the component itself nullable), so `null` would be undeclared.
  .openapi({ description: "A JSON object, at most 50 keys", example: { source: "checkout" } });

export const Reason = Text(500);

export const UserAccountId = z
  .string()
  .regex(USER_ACCOUNT_ID, "must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
  .openapi({ example: "alice" });

export const AnyAccountId = z
  .string()
  .regex(/^(@[a-z]{1,32}|[A-Za-z0-9][A-Za-z0-9_.-]{0,63})$/, "not an account id")
  .openapi({ example: "alice" });

export const Uuid = z.uuid().openapi({ example: "019a8f4e-7c1a-7b3e-9f00-6d1c2b3a4f50" });

export const Timestamp = z.iso.datetime().openapi({ example: "2026-11-23T18:00:00.000Z" });

export const Balance = z.number().int().openapi({ example: 50 });

export const Account = z
  .object({
    id: z.string(),
    settled: Balance,
    held: Balance,
    available: Balance,
    metadata: Metadata.nullable(),
    createdAt: Timestamp,
  })
  .openapi("Account", {
    description: "available = settled − held; held is the sum of the pending holds",
    example: {
      id: "alice",
      settled: 50,
      held: 20,
      available: 30,
      metadata: null,
      createdAt: "2026-11-23T18:00:00.000Z",
    },
  });

export const Entry = z
  .object({
    seq: z
      .number()
      .int()
      .nullable()
      .openapi({ description: "1, 2, 3, … in the account's sequence; null on system accounts" }),
    transactionId: Uuid,
    kind: z.enum(ENTRY_KINDS),
    amount: z.number().int().openapi({ description: "signed: + credit, − debit" }),
    settledAfter: Balance.nullable(),
    holdId: Uuid.nullable(),
    createdAt: Timestamp,
    metadata: Metadata.nullable(),
  })
  .openapi("Entry", {
    example: {
      seq: 2,
      transactionId: "019a8f4e-7c1a-7b3e-9f00-6d1c2b3a4f51",
      kind: "purchase",
      amount: -20,
      settledAfter: 30,
      holdId: "019a8f4e-7c1a-7b3e-9f00-6d1c2b3a4f50",
      createdAt: "2026-11-23T18:05:00.000Z",
      metadata: null,
    },
  });

export const pageOf = <T extends z.ZodType>(item: T, name: string) =>
  z.object({ data: z.array(item), nextCursor: z.string().nullable() }).openapi(name);

/** A `cursor` query parameter: a nextCursor this API returned, decoded to its position. */
export const cursorParam = <T>(decode: (cursor: string) => T | undefined) =>
  z
    .string()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined) return undefined;
      const position = decode(value);
      if (position === undefined) {
        ctx.addIssue({ code: "custom", message: "not a cursor returned by this API" });
        return z.NEVER;
      }
      return position;
    })
    .openapi({ type: "string", description: "nextCursor from the previous page" });

export const PageQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(200).default(50).openapi({ example: 50 }),
  cursor: cursorParam(decodeNumericCursor),
});

/** Checked by idempotent() rather than here, so that a missing key gets its own error code. */
export const IdempotencyHeader = (required: boolean) =>
  z.object({
    "idempotency-key": z
      .string()
      .optional()
      .openapi({
        description: `${required ? "Required. " : ""}1–255 printable ASCII characters; a replay returns the first response`,
        example: "order-42-attempt",
      }),
  });

export const jsonBody = <T extends z.ZodType>(schema: T) => ({
  required: true,
  content: { "application/json": { schema } },
});
