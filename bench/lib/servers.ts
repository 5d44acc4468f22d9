import { fileURLToPath } from "node:url";
import { type Child, startChild } from "./children.ts";
import { ROOT } from "./holdfast.ts";

export interface LocalServer {
  url: string;
  child: Child;
}

/** Runs one of bench/servers/*.ts in its own Node process; resolves with its URL. */
export async function startLocalServer(
  name: "bare-http" | "fulfilment-stub",
): Promise<LocalServer> {
  const script = fileURLToPath(new URL(`../servers/${name}.ts`, import.meta.url));
  const child = startChild(name, process.execPath, ["--import", "tsx", script], { cwd: ROOT });
  try {
    const match = await child.waitFor(/"port":(\d+)/);
    return { url: `http://127.0.0.1:${match[1]}`, child };
  } catch (error) {
    await child.stop();
    throw error;
  }
}
