-- Counts one redemption of a promotion on the shard whose home bucket is p_home (Shards.home),
-- for holdfast_redeem, which holds the redeeming account's lock; answers false, counting
-- nothing, when a capped promotion is at its cap.
--
-- Each shard counts in its own row of promotion_allotments, so a redemption writes on its
-- account's shard only. A capped promotion's cap is split between its rows (`allotted`, summed
-- to max_redemptions; see createPromotion), and the row's CHECK keeps its count within its
-- allotment, so the promotion never passes its cap.
--
-- The common case is one conditional UPDATE of the home row, tried only when a plain read
-- shows spare. If it then finds none (the last of it went meanwhile), it may hold the row's
-- lock (an UPDATE whose recheck fails keeps the lock), so it fails with serialization_failure
-- and the write path runs the redemption again: the slow path below must start holding no row.
--
-- The slow path, when the home row has used its allotment or this shard has no row yet, locks
-- every row of the promotion, one at a time in bucket order, until a new listing finds no row
-- it has not locked (rows are never deleted, and a row is only made by a slow path, which
-- needs the locks this one holds). Under those locks it sees the whole remaining cap: none
-- left means at the cap, exactly; else half the largest spare (rounded up) moves to the home
-- row, made if missing, and the redemption counts there (if a move to the home row came first,
-- it counts there without one). It is the only redemption path that writes on more than one
-- shard (a two-phase commit on Citus), once a shard has used its share.
--
-- No lock cycle: the caller holds its account and no other; the fast path then waits for one
-- row; slow paths take rows in one order; and no holder of a row waits for an account.
CREATE OR REPLACE FUNCTION holdfast_count_redemption(p_code text, p_home int, p_capped boolean)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  b int;
  listed int[];
  locked int[] := '{}';
  r record;
  home_spare int := 0;
  donor int;
  donor_spare int := 0;
  take int;
BEGIN
  IF NOT p_capped THEN
    INSERT INTO promotion_allotments (bucket, promotion_code, redeemed)
    VALUES (p_home, p_code, 1)
    ON CONFLICT (bucket, promotion_code)
    DO UPDATE SET redeemed = promotion_allotments.redeemed + 1;
    RETURN true;
  END IF;
  SELECT a.allotted - a.redeemed INTO home_spare FROM promotion_allotments a
   WHERE a.bucket = p_home AND a.promotion_code = p_code;
  IF home_spare > 0 THEN
    UPDATE promotion_allotments SET redeemed = redeemed + 1
     WHERE bucket = p_home AND promotion_code = p_code AND redeemed < allotted;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'the allotment of promotion % in bucket % went meanwhile', p_code, p_home
        USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN true;
  END IF;
  home_spare := 0;

  LOOP
    listed := '{}';
    FOR b IN SELECT a.bucket FROM promotion_allotments a
              WHERE a.promotion_code = p_code ORDER BY a.bucket LOOP
      listed := listed || b;
    END LOOP;
    EXIT WHEN listed = locked;
    FOREACH b IN ARRAY listed LOOP
      PERFORM 1 FROM promotion_allotments a
        WHERE a.bucket = b AND a.promotion_code = p_code FOR NO KEY UPDATE;
    END LOOP;
    locked := listed;
  END LOOP;
  FOR r IN SELECT a.bucket, a.allotted - a.redeemed AS spare FROM promotion_allotments a
            WHERE a.promotion_code = p_code LOOP
    IF r.bucket = p_home THEN
      home_spare := r.spare;
    ELSIF r.spare > donor_spare THEN
      donor := r.bucket;
      donor_spare := r.spare;
    END IF;
  END LOOP;
  IF home_spare = 0 AND donor_spare = 0 THEN
    RETURN false;
  END IF;
  take := CASE WHEN home_spare > 0 THEN 0 ELSE (donor_spare + 1) / 2 END;
  IF take > 0 THEN
    UPDATE promotion_allotments SET allotted = allotted - take
     WHERE bucket = donor AND promotion_code = p_code;
  END IF;
  INSERT INTO promotion_allotments (bucket, promotion_code, allotted, redeemed)
  VALUES (p_home, p_code, take, 1)
  ON CONFLICT (bucket, promotion_code)
  DO UPDATE SET allotted = promotion_allotments.allotted + EXCLUDED.allotted,
                redeemed = promotion_allotments.redeemed + 1;
  RETURN true;
END;
$$;
