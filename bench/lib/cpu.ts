import { readdirSync, readFileSync } from "node:fs";
import { availableParallelism } from "node:os";

/**
 * Where the CPU of a measurement went, read from /proc (Linux only), by group: the server
 * under test (the holdfast processes, or the bare HTTP server), every Postgres and Redis
 * process of the machine, the bench's own load (this process, where autocannon runs, and the
 * helpers it started: pgbench, the fulfilment stub) and the rest. Per operation, it says what
 * one operation costs the machine, and so the rate its cores allow at best.
 */
export const CPU_GROUPS = ["server", "postgres", "redis", "bench", "other"] as const;
export type CpuGroup = (typeof CPU_GROUPS)[number];

export interface CpuUse {
  /** Microseconds of CPU per operation, by group. */
  usPerOp: Record<CpuGroup, number>;
  /** CPU seconds during the measurement, by group. */
  seconds: Record<CpuGroup, number>;
  /**
   * The Postgres servers named by `nodes` (a postmaster and its children), in that order: part
   * of the postgres group, which also holds every other Postgres process of the machine.
   */
  nodes?: NodeCpu[] | undefined;
  /** Share of the machine's CPU time that was busy during the measurement (0–1). */
  busy: number;
  /** Share that the hypervisor gave to other guests (steal), counted in neither. */
  steal: number;
  cores: number;
}

/** One Postgres server whose processes are counted apart: its postmaster's pid. */
export interface PgNode {
  name: string;
  postmaster: number;
}

export interface NodeCpu {
  name: string;
  seconds: number;
  usPerOp: number;
}

/** Names a process of the measurement's server or bench group (no pid: nothing to name). */
export type Track = (group: "server" | "bench", pid: number | undefined) => void;

/** Linux's USER_HZ: /proc reports CPU time in these ticks. */
const TICKS_PER_SECOND = 100;
/**
 * Processes that exit during a measurement (pgbench's backends) are seen up to this late:
 * their last 200 ms at most go uncounted.
 */
const SAMPLE_EVERY_MS = 200;

/**
 * By process: pid and start time, so that a pid reused meanwhile is another process. `node`:
 * the index of the Postgres node (of `nodes`) whose postmaster it is or was started by.
 */
type Times = Map<string, { group: CpuGroup; node: number | undefined; seconds: number }>;

function groupOf(pid: number, comm: string, known: Map<number, CpuGroup>): CpuGroup {
  const group = known.get(pid);
  if (group) return group;
  if (comm === "postgres") return "postgres";
  if (comm.startsWith("redis-server")) return "redis";
  return "other";
}

/** CPU seconds of every process, and the machine's ticks from /proc/stat. */
function sample(
  known: Map<number, CpuGroup>,
  postmasters: Map<number, number>,
): {
  times: Times;
  total: number;
  idle: number;
  steal: number;
} {
  const times: Times = new Map();
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    let line: string;
    try {
      line = readFileSync(`/proc/${pid}/stat`, "utf8");
    } catch {
      continue; // exited meanwhile
    }
    // "pid (comm) state ppid …": comm may hold spaces, so split after its closing parenthesis.
    const close = line.lastIndexOf(")");
    const comm = line.slice(line.indexOf("(") + 1, close);
    const fields = line.slice(close + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime
    const group = groupOf(pid, comm, known);
    // A server's backends and auxiliary processes are all children of its postmaster.
    const node =
      group === "postgres"
        ? (postmasters.get(pid) ?? postmasters.get(Number(fields[1])))
        : undefined;
    times.set(`${pid}:${fields[19]}`, { group, node, seconds: ticks / TICKS_PER_SECOND });
  }
  // user nice system idle iowait irq softirq steal; guest time is already in user and nice.
  const cpu = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/);
  const ticks = cpu.slice(1, 9).map(Number);
  return {
    times,
    total: ticks.reduce((a, b) => a + b, 0),
    idle: ticks[3]! + ticks[4]!,
    steal: ticks[7] ?? 0,
  };
}

/**
 * Runs `measure` and answers its result with the CPU spent meanwhile per operation
 * (`operations` of the result), by group. `measure` names the server's and the bench's
 * processes with `track`; a process counts in the group it was last seen in, from the start of
 * the measurement or its own. The sampling itself runs in this process and counts as bench.
 * The Postgres processes of each of `nodes` are also counted by node. Off Linux `cpu` is
 * undefined.
 */
export async function withCpu<T>(
  measure: (track: Track) => Promise<T>,
  operations: (result: T) => number,
  nodes: PgNode[] = [],
): Promise<{ result: T; cpu: CpuUse | undefined }> {
  const known = new Map<number, CpuGroup>([[process.pid, "bench"]]);
  const postmasters = new Map(nodes.map((node, i) => [node.postmaster, i]));
  const track: Track = (group, pid) => {
    if (pid !== undefined) known.set(pid, group);
  };
  let first: ReturnType<typeof sample>;
  try {
    first = sample(known, postmasters);
  } catch {
    return { result: await measure(track), cpu: undefined };
  }
  // The latest CPU time seen of every process, exited ones included.
  const latest: Times = new Map(first.times);
  const refresh = () => {
    const now = sample(known, postmasters);
    for (const [pid, time] of now.times) latest.set(pid, time);
    return now;
  };
  const timer = setInterval(refresh, SAMPLE_EVERY_MS);
  let result: T;
  let last: ReturnType<typeof sample>;
  try {
    result = await measure(track);
  } finally {
    clearInterval(timer);
    last = refresh();
  }
  const ops = operations(result);
  if (ops <= 0) return { result, cpu: undefined };
  const seconds = Object.fromEntries(CPU_GROUPS.map((g) => [g, 0])) as Record<CpuGroup, number>;
  const nodeSeconds = nodes.map(() => 0);
  for (const [id, time] of latest) {
    const spent = time.seconds - (first.times.get(id)?.seconds ?? 0);
    seconds[time.group] += spent;
    if (time.node !== undefined) nodeSeconds[time.node]! += spent;
  }
  const perOp = (s: number) => (s * 1e6) / ops;
  const usPerOp = Object.fromEntries(CPU_GROUPS.map((g) => [g, perOp(seconds[g])])) as Record<
    CpuGroup,
    number
  >;
  const total = last.total - first.total;
  const idle = last.idle - first.idle;
  const steal = last.steal - first.steal;
  return {
    result,
    cpu: {
      usPerOp,
      seconds,
      ...(nodes.length > 0
        ? {
            nodes: nodes.map((node, i) => ({
              name: node.name,
              seconds: nodeSeconds[i]!,
              usPerOp: perOp(nodeSeconds[i]!),
            })),
          }
        : {}),
      busy: total > 0 ? (total - idle - steal) / total : 0,
      steal: total > 0 ? steal / total : 0,
      cores: availableParallelism(),
    },
  };
}
