import { randomBytes } from "node:crypto";
import autocannon from "autocannon";
import { type CpuUse, type PgNode, withCpu } from "./cpu.ts";

export interface LoadOptions {
  url: string;
  method: "GET" | "POST";
  path: string;
  token: string;
  connections: number;
  /** Seconds; or `amount` requests in total. */
  durationS?: number;
  amount?: number;
  /** A fresh body for every request (POST). */
  body?: () => unknown;
  /** Give every request its own Idempotency-Key. */
  idempotencyKeys?: boolean;
}

export interface LoadResult {
  durationS: number;
  /** Responses with the expected status (201 for writes, 200 for reads). */
  ok: number;
  okPerSecond: number;
  latencyMs: { p50: number; p99: number; average: number };
  non2xx: number;
  errors: number;
  timeouts: number;
  statusCodes: Record<string, number>;
  /** Where the machine's CPU went during the run, per expected response (see withCpu). */
  cpu?: CpuUse | undefined;
}

/**
 * `load`, with the CPU per expected response, the process `serverPid` as the server and the
 * Postgres processes of each of `nodes` counted by node.
 */
export async function measuredLoad(
  serverPid: number | undefined,
  load: () => Promise<LoadResult>,
  nodes?: PgNode[],
): Promise<LoadResult> {
  const { result, cpu } = await withCpu(
    (track) => {
      track("server", serverPid);
      return load();
    },
    (r) => r.ok,
    nodes,
  );
  return { ...result, cpu };
}

/**
 * One autocannon run in this process. Latency percentiles are autocannon's (1 ms resolution,
 * 2xx responses only); the rate counts only responses with `expect` status.
 */
export async function runLoad(options: LoadOptions, expect: number): Promise<LoadResult> {
  const keyPrefix = randomBytes(6).toString("hex");
  let sequence = 0;
  const headers: Record<string, string> = {
    authorization: `Bearer ${options.token}`,
    "content-type": "application/json",
  };
  const instance = autocannon({
    url: `${options.url}${options.path}`,
    connections: options.connections,
    ...(options.amount !== undefined ? { amount: options.amount } : {}),
    ...(options.durationS !== undefined ? { duration: options.durationS } : {}),
    timeout: 30,
    method: options.method,
    headers,
    // Only dynamic requests pay for a rebuild per request.
    ...(options.idempotencyKeys || options.body
      ? {
          requests: [
            {
              method: options.method,
              path: options.path,
              setupRequest: (request: autocannon.Request) => {
                if (options.idempotencyKeys) {
                  request.headers = {
                    ...request.headers,
                    "idempotency-key": `${keyPrefix}-${++sequence}`,
                  };
                }
                if (options.body) request.body = JSON.stringify(options.body());
                return request;
              },
            },
          ],
        }
      : {}),
  });
  const result = await instance;
  const statusCodes = Object.fromEntries(
    Object.entries(result.statusCodeStats).map(([code, { count }]) => [code, count]),
  );
  const ok = statusCodes[String(expect)] ?? 0;
  return {
    durationS: result.duration,
    ok,
    okPerSecond: ok / result.duration,
    latencyMs: {
      p50: result.latency.p50,
      p99: result.latency.p99,
      average: result.latency.average,
    },
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    statusCodes,
  };
}
