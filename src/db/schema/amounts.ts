import { sql } from "drizzle-orm";

/** 2^53 − 1: the largest amount or user balance, so every amount is exact as a JSON number. */
export const MAX_AMOUNT = Number.MAX_SAFE_INTEGER;

export const MAX_AMOUNT_SQL = sql.raw(String(MAX_AMOUNT));
