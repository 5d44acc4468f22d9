// The HTTP limit: a node:http server that does nothing but read the request and answer 201 with
// a small JSON body. Run as its own process so it does not share the load generator's event loop.
import { createServer } from "node:http";

const BODY = JSON.stringify({ hold: { id: "00000000-0000-7000-8000-000000000000" }, ok: true });

const server = createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    res.writeHead(201, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(BODY),
    });
    res.end(BODY);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  console.log(JSON.stringify({ port: typeof address === "object" && address ? address.port : 0 }));
});
const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
