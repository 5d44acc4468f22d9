import postgres from "postgres";
import { CITUS_COORDINATOR_PORT, requireCitus } from "../helpers/citus.ts";

/**
 * The tests count two-phase commits in pg_dist_transaction, whose rows the coordinator's
 * recovery deletes once a minute by default: on the test cluster it is switched off.
 */
export async function setup() {
  await requireCitus();
  const sql = postgres(`postgres://postgres@127.0.0.1:${CITUS_COORDINATOR_PORT}/postgres`, {
    max: 1,
    onnotice: () => {},
  });
  try {
    await sql`ALTER SYSTEM SET citus.recover_2pc_interval = -1`;
    await sql`SELECT pg_reload_conf()`;
  } finally {
    await sql.end();
  }
}
