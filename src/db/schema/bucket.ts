import { integer } from "drizzle-orm/pg-core";

/**
 * The distribution key: every row written on behalf of an account carries its account's
 * bucket, an integer in [0, BUCKETS) derived from the account id (bucketOf in
 * src/ledger/ids.ts). On Citus every table is distributed by it, so a write that names one
 * account, or one hold, touches one shard.
 */
export const BUCKETS = 4096;

export const bucket = () => integer("bucket").notNull();
