import { type ChildProcess, type SpawnOptions, spawn } from "node:child_process";

/**
 * Every child process the bench starts, so that none outlives it: `stopAll` runs on the way
 * out (finally, SIGINT, SIGTERM) and `process.on("exit")` SIGKILLs whatever is left.
 */
const running = new Set<ChildProcess>();

process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

export interface Child {
  process: ChildProcess;
  /** The last few KiB of stdout and stderr, for error messages. */
  output(): string;
  /** Resolves with the first match of `pattern` in the output; rejects if the child exits first. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  stop(graceMs?: number): Promise<number | null>;
}

const KEEP_OUTPUT = 16 * 1024;

export function startChild(
  name: string,
  command: string,
  args: string[],
  options: SpawnOptions = {},
): Child {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], ...options });
  running.add(child);
  let output = "";
  const listeners = new Set<() => void>();
  const append = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-KEEP_OUTPUT);
    for (const listener of listeners) listener();
  };
  child.stdout?.on("data", append);
  child.stderr?.on("data", append);
  const exited = new Promise<number | null>((resolve) => {
    child.once("exit", (code, signal) => {
      running.delete(child);
      for (const listener of listeners) listener();
      resolve(code ?? (signal ? null : 0));
    });
    child.once("error", (error) => {
      output += `\n${error.message}`;
      running.delete(child);
      resolve(null);
    });
  });

  return {
    process: child,
    output: () => output,
    exited,
    waitFor(pattern, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const match = pattern.exec(output);
          if (match) return done(() => resolve(match));
          if (child.exitCode !== null || child.signalCode !== null || !running.has(child)) {
            done(() => reject(new Error(`${name} exited before it was ready:\n${output}`)));
          }
        };
        const timer = setTimeout(
          () =>
            done(() => reject(new Error(`${name} not ready after ${timeoutMs} ms:\n${output}`))),
          timeoutMs,
        );
        const done = (settle: () => void) => {
          clearTimeout(timer);
          listeners.delete(check);
          settle();
        };
        listeners.add(check);
        check();
      });
    },
    async stop(graceMs = 10_000) {
      if (running.has(child)) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
        await exited;
        clearTimeout(timer);
      }
      return exited;
    },
  };
}

export async function stopAll(): Promise<void> {
  await Promise.all(
    [...running].map(
      (child) =>
        new Promise<void>((resolve) => {
          child.once("exit", () => resolve());
          child.kill("SIGTERM");
          setTimeout(() => child.kill("SIGKILL"), 3_000).unref();
        }),
    ),
  );
}
