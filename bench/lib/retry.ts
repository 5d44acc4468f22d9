import { setTimeout as sleep } from "node:timers/promises";
import { log } from "./context.ts";

const TOO_MANY_CONNECTIONS = "53300";

function noSlot(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  const message = String((error as Error).message ?? error);
  return code === TOO_MANY_CONNECTIONS || message.includes(TOO_MANY_CONNECTIONS);
}

/**
 * Retries `run` while Postgres refuses connections because max_connections is used up: the
 * server is shared (test suites run beside the bench), and a full slot table is a moment's
 * state, not a result. Anything else fails at once. `run` must be safe to repeat after a
 * refused connection (a refused connection has written nothing).
 */
export async function whenSlotFree<T>(what: string, run: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (error) {
      if (attempt >= 20 || !noSlot(error)) throw error;
      log(`${what}: Postgres has no free connection slot; retrying in 3 s`);
      await sleep(3_000);
    }
  }
}
