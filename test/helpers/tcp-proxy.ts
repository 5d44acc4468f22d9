import type { AddressInfo } from "node:net";
import { createServer, type Socket, connect as tcpConnect } from "node:net";

export interface TcpProxy {
  port: number;
  /** Connections opened through the proxy so far. */
  connections(): number;
  /** Resets (RST) every open connection, both sides: what a network failure looks like. */
  reset(): void;
  /** While true, new connections are reset at once: the server is down. */
  refuse(down: boolean): void;
  close(): Promise<void>;
}

/**
 * A TCP proxy to 127.0.0.1:`targetPort` on a free port, for tests that need a connection to
 * fail in a chosen way. `onClientData` sees each chunk the client sends, with the connection's
 * chunk count, and may reset that connection.
 */
export async function startTcpProxy(
  targetPort: number,
  options: { onClientData?: (chunk: Buffer, n: number, reset: () => void) => void } = {},
): Promise<TcpProxy> {
  const pairs = new Set<[Socket, Socket]>();
  let opened = 0;
  let refusing = false;
  const server = createServer((client) => {
    if (refusing) {
      client.on("error", () => {});
      client.resetAndDestroy();
      return;
    }
    opened++;
    const upstream = tcpConnect(targetPort, "127.0.0.1");
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const resetPair = () => {
      pairs.delete(pair);
      client.resetAndDestroy();
      upstream.resetAndDestroy();
    };
    let chunks = 0;
    client.on("data", (chunk: Buffer) => {
      chunks++;
      options.onClientData?.(chunk, chunks, resetPair);
      if (!upstream.destroyed) upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      if (!client.destroyed) client.write(chunk);
    });
    const done = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const s of pair) {
      s.on("error", done);
      s.on("close", done);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => opened,
    reset: () => {
      for (const [client, upstream] of [...pairs]) {
        client.resetAndDestroy();
        upstream.resetAndDestroy();
      }
      pairs.clear();
    },
    refuse: (down) => {
      refusing = down;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const [client, upstream] of pairs) {
          client.destroy();
          upstream.destroy();
        }
        server.close(() => resolve());
      }),
  };
}
