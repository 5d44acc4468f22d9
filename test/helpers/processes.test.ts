import { type AddressInfo, createServer, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChildStartError, startChild } from "./child-process.ts";
import { spawnServe } from "./processes.ts";
import { spawnWorker } from "./workers.ts";

/** kill(pid, 0) throws ESRCH once no process has the pid (node reaps its children on exit). */
const isGone = (pid: number | undefined) => {
  expect(pid).toBeTypeOf("number");
  try {
    process.kill(pid!, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ESRCH";
  }
};

async function startFailure(start: Promise<unknown>): Promise<ChildStartError> {
  const error = await start.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ChildStartError);
  return error as ChildStartError;
}

// A "Postgres" that accepts connections and never answers: holdfast waits on it, never ready.
let blackhole: Server;
let blackholeUrl: string;
const sockets = new Set<Socket>();

beforeAll(async () => {
  blackhole = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => blackhole.listen(0, "127.0.0.1", resolve));
  blackholeUrl = `postgres://127.0.0.1:${(blackhole.address() as AddressInfo).port}/holdfast`;
});

afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise((resolve) => blackhole.close(resolve));
});

describe("a start that fails leaves no process behind", () => {
  it("a child that never becomes ready and ignores SIGTERM is SIGKILLed; its output is in the error", async () => {
    const script =
      'process.on("SIGTERM", () => {}); console.error("still loading"); setInterval(() => {}, 1000);';
    const error = await startFailure(
      startChild(process.execPath, ["-e", script], {
        env: process.env,
        ready: /ready/,
        timeoutMs: 500,
        what: "stubborn",
      }),
    );
    expect(error.message).toMatch(/^stubborn did not start within 500 ms \(pid \d+\)/);
    expect(error.message).toContain("still loading");
    expect(isGone(error.pid)).toBe(true);
  });

  it("holdfast serve that times out waiting for Postgres is stopped", async () => {
    const error = await startFailure(spawnServe(blackholeUrl, {}, { timeoutMs: 1500 }));
    expect(error.message).toMatch(/^serve did not start within 1500 ms/);
    expect(isGone(error.pid)).toBe(true);
  });

  it("holdfast worker that times out waiting for Postgres is stopped", async () => {
    const error = await startFailure(
      spawnWorker({ DATABASE_URL: blackholeUrl }, { timeoutMs: 1500 }),
    );
    expect(error.message).toMatch(/^worker did not start within 1500 ms/);
    expect(isGone(error.pid)).toBe(true);
  });

  it("holdfast worker that exits at start: the error quotes why", async () => {
    const error = await startFailure(spawnWorker({ DATABASE_URL: "postgres://127.0.0.1:1/x" }));
    expect(error.message).toMatch(/^worker exited with 1/);
    expect(error.message).toContain("cannot reach Postgres at postgres://127.0.0.1:1/x");
    expect(isGone(error.pid)).toBe(true);
  });
});
