-- The bucket of an account id: the first 12 bits of its MD5. bucketOf in src/ledger/ids.ts
-- computes the same (test/db/buckets.test.ts checks that they agree).
CREATE OR REPLACE FUNCTION holdfast_bucket(account_id text) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT (get_byte(decode(md5(account_id), 'hex'), 0) * 16
          + get_byte(decode(md5(account_id), 'hex'), 1) / 16)::integer
$$;
