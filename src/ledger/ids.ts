import { v7 } from "uuid";

/** Time-ordered UUIDs (v7): ids sort by creation, which keeps "newest first" an index scan. */
export const newId = (): string => v7();

export const SYSTEM_ACCOUNTS = ["@issuance", "@revenue", "@promotions"] as const;
export type SystemAccountId = (typeof SYSTEM_ACCOUNTS)[number];

export const USER_ACCOUNT_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export const isSystemAccountId = (id: string): boolean => id.startsWith("@");
