import type { Queue } from "bullmq";
import { holdOutcomes } from "../../reservations/hold-outcomes.ts";
import { holdStats } from "../../reservations/hold-stats.ts";
import { oldestPendingHolds } from "../../reservations/oldest-pending-holds.ts";
import { type HoldSearch, searchHolds } from "../../reservations/search-holds.ts";
import { pausedExpiryQueues } from "../../workers/paused-queues.ts";
import type { Mount } from "../app.ts";
import { adminPage } from "../auth.ts";
import { DASHBOARD_PATH } from "../dashboard.ts";
import { panelHeaders } from "../page-headers.ts";
import { HttpError } from "../problem.ts";
import { HoldsPage } from "./holds-view.tsx";

export const HOLDS_PANEL_PATH = "/admin/holds";
const LIST_LIMIT = 50;
const REDIS_TIMEOUT_MS = 2000;

function searchFrom(
  account: string | undefined,
  order: string | undefined,
): HoldSearch | undefined {
  const accountId = account?.trim();
  const orderId = order?.trim();
  if (accountId && orderId)
    throw new HttpError("invalid_request", "search by account id or by order id, not both");
  if ((accountId?.length ?? 0) > 64 || (orderId?.length ?? 0) > 255)
    throw new HttpError(
      "invalid_request",
      "an account id has at most 64 characters, an order id 255",
    );
  if (accountId) return { accountId };
  if (orderId) return { orderId };
  return undefined;
}

/** The paused expiry queues, or undefined when Redis does not answer in time. */
async function pausedOrUnknown(queues: Queue[]): Promise<string[] | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), REDIS_TIMEOUT_MS);
  });
  try {
    return await Promise.race([pausedExpiryQueues(queues).catch(() => undefined), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The holds panel at /admin/holds, behind the dashboard's auth: figures from Postgres (not from
 * the queues, whose counts include jobs of holds that already ended), and whether expiry is
 * paused, from the queues.
 */
export function holdsPanel(queues: Queue[], options: { fulfilment: boolean }): Mount {
  return (app) => {
    app.get(HOLDS_PANEL_PATH, panelHeaders, ...adminPage, async (c) => {
      const query = searchFrom(c.req.query("account"), c.req.query("order"));
      const { db } = c.get("deps");
      const [stats, outcomes, oldest, found, paused] = await Promise.all([
        holdStats(db),
        holdOutcomes(db),
        oldestPendingHolds(db, LIST_LIMIT),
        query && searchHolds(db, query, LIST_LIMIT),
        pausedOrUnknown(queues),
      ]);
      const page = HoldsPage({
        stats,
        outcomes,
        oldest,
        paused,
        search: query && found ? { query, holds: found } : undefined,
        fulfilment: options.fulfilment,
        dashboardPath: DASHBOARD_PATH,
        now: Date.now(),
        nonce: c.get("secureHeadersNonce"),
      });
      return c.html(`<!DOCTYPE html>${page}`);
    });
  };
}
