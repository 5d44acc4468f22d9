import { type ChildProcess, spawn } from "node:child_process";

/** How long spawnServe and spawnWorker wait for a process to become ready, unless told. */
export const START_TIMEOUT_MS = 20_000;
/** How much of a child's output a start failure quotes. */
const TAIL_CHARS = 4000;
/** How long a child has after SIGTERM before it gets SIGKILL. */
const GRACE_MS = 3000;

export interface StartedChild {
  child: ChildProcess;
  /** What the readiness pattern matched in the output. */
  match: RegExpExecArray;
  /** Everything it has written to stdout and stderr so far. */
  output(): string;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
}

export interface StartChildOptions {
  env: NodeJS.ProcessEnv;
  /** Matched against all output so far (stdout and stderr) after each chunk. */
  ready: RegExp;
  timeoutMs: number;
  /** Names the process in errors: "serve", "worker". */
  what: string;
}

const tail = (text: string) =>
  text.length > TAIL_CHARS ? `…${text.slice(text.length - TAIL_CHARS)}` : text;

/** A start that failed; the child is gone by the time this is thrown. */
export class ChildStartError extends Error {
  constructor(
    message: string,
    readonly pid: number | undefined,
    readonly output: string,
  ) {
    super(`${message} (pid ${pid}); its output:\n${tail(output)}`);
  }
}

const hasExited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null;

/**
 * SIGTERM (or `signal`), then SIGKILL if the child is still there after `graceMs` (never, with
 * null: a test that checks a graceful shutdown waits for it); resolves once it has exited,
 * with its exit code (null when a signal ended it).
 */
export function stopChild(
  child: ChildProcess,
  signal: NodeJS.Signals = "SIGTERM",
  graceMs: number | null = GRACE_MS,
): Promise<number | null> {
  // No pid: the spawn itself failed, and there is nothing to stop.
  if (hasExited(child) || child.pid === undefined) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    const escalate =
      graceMs === null ? undefined : setTimeout(() => child.kill("SIGKILL"), graceMs);
    child.once("exit", (code) => {
      clearTimeout(escalate);
      resolve(code);
    });
    child.kill(signal);
  });
}

/**
 * Spawns `command args` and resolves once its output matches `ready`. Any other outcome (the
 * timeout, an early exit, a spawn error) stops the child before rejecting, with the tail of its
 * output in the error: a child left running after a failed start would keep consuming jobs
 * and ports under the tests that come after.
 */
export async function startChild(
  command: string,
  args: string[],
  options: StartChildOptions,
): Promise<StartedChild> {
  const { ready, timeoutMs, what } = options;
  const child = spawn(command, args, { env: options.env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  // A spawn error (ENOENT…) emits "error" and maybe no "exit"; without a listener it throws.
  const spawnError = new Promise<Error>((resolve) => child.once("error", resolve));
  let timer: NodeJS.Timeout | undefined;
  try {
    const match = await new Promise<RegExpExecArray>((resolve, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${what} did not start within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        const found = ready.exec(output);
        if (found) resolve(found);
      };
      child.stdout!.on("data", onData);
      child.stderr!.on("data", onData);
      exited.then((code) => reject(new Error(`${what} exited with ${code}`)));
      spawnError.then((error) => reject(new Error(`${what} could not start: ${error.message}`)));
    });
    return { child, match, output: () => output, exited };
  } catch (error) {
    await stopChild(child);
    throw new ChildStartError((error as Error).message, child.pid, output);
  } finally {
    clearTimeout(timer);
  }
}
