import { type ChildProcess, spawn } from "node:child_process";

const TAIL_LINES = 200;
/**
 * How long a process may take to start. Loading holdfast takes 1-3 s on an idle machine; on two
 * cores shared with a run's workload (and the Citus nodes', in the scale project) over 20 s, the
 * limit of test/helpers' spawnServe and spawnWorker. A start that times out here is killed, then
 * retried.
 */
const START_TIMEOUT_MS = 60_000;

/**
 * Spawns `node bin/holdfast.js <command>` and resolves once a line of its output matches
 * `ready` (with the match), as test/helpers' spawnServe and spawnWorker do, but with
 * START_TIMEOUT_MS and a SIGKILL for a process that did not start in time.
 */
function launch(
  command: "serve" | "worker",
  env: Record<string, string>,
  ready: RegExp,
): Promise<{ child: ChildProcess; match: RegExpExecArray }> {
  const child = spawn(process.execPath, ["bin/holdfast.js", command], {
    env: { ...process.env, LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  return new Promise((resolve, reject) => {
    const settle = () => {
      clearTimeout(timer);
      child.stdout!.off("data", onData);
      child.stderr!.off("data", onData);
      child.off("exit", onExit);
    };
    const timer = setTimeout(() => {
      settle();
      child.kill("SIGKILL");
      reject(new Error(`${command} did not start within ${START_TIMEOUT_MS} ms:\n${output}`));
    }, START_TIMEOUT_MS);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = ready.exec(output);
      if (match) {
        settle();
        resolve({ child, match });
      }
    };
    const onExit = (code: number | null) => {
      settle();
      reject(new Error(`${command} exited with ${code}:\n${output}`));
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.on("exit", onExit);
  });
}

export interface Member {
  name: string;
  kind: "api" | "worker";
  child: ChildProcess;
  /** API only. */
  baseUrl?: string;
  /** Set before the run kills or stops it, so that its exit is not a defect. */
  expectedExit: boolean;
  exit?: { code: number | null; signal: NodeJS.Signals | null };
  /** Requests the chaos clients have in flight to it (API only). */
  inFlight: number;
  /** Requests it answered 503 unavailable, from its log. */
  unavailable: number;
  tail: string[];
}

export interface LogLine {
  member: string;
  level: number;
  msg: string;
  line: string;
}

/**
 * The holdfast processes of a chaos run: `serve` and `worker` as separate OS processes with the
 * same environment. Watches them: an exit the run did not cause is a defect (node exits on an
 * unhandled rejection), and every error-level log line is kept for the report.
 */
export class Cluster {
  readonly members: Member[] = [];
  readonly errors: LogLine[] = [];
  readonly unexpectedExits: string[] = [];
  readonly startFailures: string[] = [];
  private counters = { api: 0, worker: 0 };

  constructor(
    private readonly databaseUrl: string,
    private readonly env: Record<string, string>,
  ) {}

  get apis(): Member[] {
    return this.members.filter((m) => m.kind === "api" && !m.exit && !m.expectedExit);
  }

  get workers(): Member[] {
    return this.members.filter((m) => m.kind === "worker" && !m.exit && !m.expectedExit);
  }

  private watch(member: Member) {
    let partial = "";
    const onData = (chunk: Buffer) => {
      partial += chunk.toString("utf8");
      const lines = partial.split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) {
        if (line === "") continue;
        member.tail.push(line);
        if (member.tail.length > TAIL_LINES) member.tail.shift();
        let level = 0;
        let msg = line;
        try {
          const parsed = JSON.parse(line) as { level?: number; msg?: string };
          level = parsed.level ?? 0;
          msg = parsed.msg ?? line;
        } catch {
          // Not pino: node's own output, such as an uncaught error's stack on stderr.
          level = 50;
        }
        if (level >= 50) this.errors.push({ member: member.name, level, msg, line });
        if (msg === "dependency unavailable") member.unavailable++;
      }
    };
    member.child.stdout?.on("data", onData);
    member.child.stderr?.on("data", onData);
    member.child.on("exit", (code, signal) => {
      member.exit = { code, signal };
      if (!member.expectedExit) {
        this.unexpectedExits.push(
          `${member.name} (pid ${member.child.pid}) exited unexpectedly: code ${code}, signal ${signal}\n` +
            member.tail.slice(-30).join("\n"),
        );
      }
    });
  }

  /**
   * Starts a process, retrying a start that fails: a process that starts while Postgres is
   * restarting refuses to start (by design: one line naming the URL), and a supervisor would
   * start it again.
   */
  private async start<T>(kind: "api" | "worker", launch: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await launch();
      } catch (error) {
        const message = String((error as Error).message).slice(0, 2000);
        this.startFailures.push(`${kind} start attempt ${attempt}: ${message}`);
        if (attempt >= 5) throw error;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  async startApi(env: Record<string, string> = {}): Promise<Member> {
    const name = `api-${++this.counters.api}`;
    const serve = await this.start("api", () =>
      launch(
        "serve",
        { DATABASE_URL: this.databaseUrl, PORT: "0", ...this.env, ...env },
        /"port":(\d+)/,
      ),
    );
    const member: Member = {
      name,
      kind: "api",
      child: serve.child,
      baseUrl: `http://127.0.0.1:${serve.match[1]}`,
      expectedExit: false,
      inFlight: 0,
      unavailable: 0,
      tail: [],
    };
    this.watch(member);
    this.members.push(member);
    return member;
  }

  async startWorker(): Promise<Member> {
    const name = `worker-${++this.counters.worker}`;
    const worker = await this.start("worker", () =>
      launch(
        "worker",
        { DATABASE_URL: this.databaseUrl, ...this.env },
        /"msg":"holdfast workers running"/,
      ),
    );
    const member: Member = {
      name,
      kind: "worker",
      child: worker.child,
      expectedExit: false,
      inFlight: 0,
      unavailable: 0,
      tail: [],
    };
    this.watch(member);
    this.members.push(member);
    return member;
  }

  /** SIGKILL: no chance to finish anything. */
  async kill(member: Member): Promise<void> {
    member.expectedExit = true;
    await this.signal(member, "SIGKILL");
  }

  /** SIGTERM, and the exit it led to. */
  async stop(member: Member): Promise<NonNullable<Member["exit"]>> {
    member.expectedExit = true;
    await this.signal(member, "SIGTERM");
    return member.exit!;
  }

  private signal(member: Member, signal: NodeJS.Signals): Promise<void> {
    if (member.exit) return Promise.resolve();
    return new Promise((resolve) => {
      member.child.once("exit", () => resolve());
      member.child.kill(signal);
    });
  }

  /**
   * SIGTERM to every live process; each must exit 0 within `timeoutMs` (workers finish the job
   * in hand first). Returns the ones that did not.
   */
  async stopAll(timeoutMs = 20_000): Promise<string[]> {
    const live = this.members.filter((m) => !m.exit);
    const problems: string[] = [];
    await Promise.all(
      live.map(async (m) => {
        m.expectedExit = true;
        const timer = setTimeout(() => {
          problems.push(`${m.name} did not exit within ${timeoutMs} ms of SIGTERM`);
          m.child.kill("SIGKILL");
        }, timeoutMs);
        await this.signal(m, "SIGTERM");
        clearTimeout(timer);
        if (m.exit && m.exit.code !== 0 && m.exit.signal !== "SIGKILL")
          problems.push(
            `${m.name} exited ${m.exit.code} on SIGTERM:\n${m.tail.slice(-20).join("\n")}`,
          );
      }),
    );
    return problems;
  }

  /** Last resort for afterAll: nothing may outlive the run. */
  killAll() {
    for (const m of this.members) {
      if (!m.exit) {
        m.expectedExit = true;
        m.child.kill("SIGKILL");
      }
    }
  }
}
