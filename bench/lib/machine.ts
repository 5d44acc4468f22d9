import os from "node:os";

export interface MachineInfo {
  os: string;
  cpuModel: string;
  cpuCount: number;
  totalMemoryGiB: number;
  node: string;
  postgres: string;
  synchronousCommit: string;
  date: string;
}

export function machineInfo(postgres: { version: string; synchronousCommit: string }): MachineInfo {
  const cpus = os.cpus();
  return {
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    cpuModel: cpus[0]?.model.trim() ?? "unknown",
    cpuCount: cpus.length,
    totalMemoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    postgres: postgres.version,
    synchronousCommit: postgres.synchronousCommit,
    date: new Date().toISOString(),
  };
}
