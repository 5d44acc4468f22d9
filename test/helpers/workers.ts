import type { ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Redis } from "ioredis";
import type { HoldQueues } from "../../src/workers/queues.ts";
import type { StartWorkersOptions } from "../../src/workers/worker.ts";
import { START_TIMEOUT_MS, startChild } from "./child-process.ts";

/** A private BullMQ prefix, hash-tagged like the production one. */
export const testPrefix = () => `{hf-test-${randomUUID()}}`;

export type WorkerEnv = StartWorkersOptions["env"];

export const workerEnv = (overrides: Partial<WorkerEnv> = {}): WorkerEnv => ({
  FULFILMENT_URL: undefined,
  FULFILMENT_SECRET: undefined,
  HOLDFAST_SWEEP_INTERVAL_MS: 60_000,
  HOLDFAST_QUEUE_PREFIX: testPrefix(),
  HOLDFAST_FULFIL_CONCURRENCY: 50,
  HOLDFAST_WEBHOOK_RETRY_HOURS: 24,
  ...overrides,
});

/** Polls `check` until it returns a value other than undefined/false, or fails after `timeoutMs`. */
export async function waitFor<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  options: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 20_000);
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value as T;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out waiting for ${options.what ?? "a condition"}${last ? `: ${String(last)}` : ""}`,
      );
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 50));
  }
}

export interface StubRequest {
  headers: IncomingHttpHeaders;
  body: string;
  // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary fields of the posted hold
  json: any;
  receivedAt: number;
}

export interface Reply {
  status: number;
  body?: unknown;
  /** Answer after this many ms. */
  delayMs?: number;
  /** Never answer (until the stub closes). */
  hang?: boolean;
}

export interface FulfilmentStub {
  url: string;
  requests: StubRequest[];
  /** Requests for one hold, in arrival order. */
  requestsFor(holdId: string): StubRequest[];
  close(): Promise<void>;
}

/**
 * A fulfilment webhook on 127.0.0.1 (random port). `reply` decides each answer from the
 * request and how many requests for the same hold came before it.
 */
export async function startFulfilmentStub(
  reply: (request: StubRequest, attempt: number) => Reply | Promise<Reply>,
): Promise<FulfilmentStub> {
  const requests: StubRequest[] = [];
  const open = new Set<ServerResponse>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      const body = Buffer.concat(chunks).toString();
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        json = undefined;
      }
      const request: StubRequest = { headers: req.headers, body, json, receivedAt: Date.now() };
      const attempt = requests.filter(
        (r) => r.json?.holdId !== undefined && r.json?.holdId === request.json?.holdId,
      ).length;
      requests.push(request);
      const answer = await reply(request, attempt);
      if (answer.hang) {
        open.add(res);
        return;
      }
      const send = () => {
        const text =
          answer.body === undefined
            ? ""
            : typeof answer.body === "string"
              ? answer.body
              : JSON.stringify(answer.body);
        res.writeHead(answer.status, { "content-type": "application/json" }).end(text);
      };
      if (answer.delayMs) setTimeout(send, answer.delayMs);
      else send();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/fulfil`,
    requests,
    requestsFor: (holdId) => requests.filter((r) => r.json?.holdId === holdId),
    close: () =>
      new Promise<void>((resolve) => {
        for (const res of open) res.destroy();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Deletes every key under `prefix`: what a FLUSHDB does to a queue that owns only its prefix. */
export async function deleteKeysUnder(redis: Redis, prefix: string): Promise<number> {
  // One script, so the deletion is atomic as FLUSHDB is. A SCAN + DEL loop let a job added
  // meanwhile (the sweep re-adds every 300 ms here) keep its hash while its queue lists went:
  // a job no list holds, which re-adds under the same id then skip, so its hold waited for
  // its deadline. Redis can only do that to BullMQ by evicting keys (see the README).
  return (await redis.eval(
    `local keys = redis.call('KEYS', ARGV[1])
     for i = 1, #keys, 5000 do redis.call('DEL', unpack(keys, i, math.min(i + 4999, #keys))) end
     return #keys`,
    0,
    `${prefix}:*`,
  )) as number;
}

/** Removes a test's queues from Redis and closes them. */
export async function obliterate(queues: HoldQueues): Promise<void> {
  await Promise.all(queues.all.map((q) => q.obliterate({ force: true }).catch(() => {})));
  await queues.close();
}

export interface WorkerProcess {
  child: ChildProcess;
  output(): string;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
}

/**
 * Starts `holdfast worker` as its own OS process and waits until its workers run. A start that
 * fails (timeout, exit) stops the process before rejecting.
 */
export async function spawnWorker(
  env: Record<string, string>,
  options: { timeoutMs?: number } = {},
): Promise<WorkerProcess> {
  const { child, output, exited } = await startChild(
    process.execPath,
    ["bin/holdfast.js", "worker"],
    {
      env: { ...process.env, LOG_LEVEL: "info", ...env },
      ready: /"msg":"holdfast workers running"/,
      timeoutMs: options.timeoutMs ?? START_TIMEOUT_MS,
      what: "worker",
    },
  );
  return { child, output, exited };
}
