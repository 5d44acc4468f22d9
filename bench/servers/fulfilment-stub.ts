// A fulfilment webhook that approves everything at once: 200 {} for every POST, so the settle
// rate measures holdfast's worker, not the receiver. Counts deliveries for the report.
import { createServer } from "node:http";

let deliveries = 0;
const server = createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    deliveries++;
    res.writeHead(200, { "content-type": "application/json", "content-length": 2 });
    res.end("{}");
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  console.log(JSON.stringify({ port: typeof address === "object" && address ? address.port : 0 }));
});
const stop = () => {
  console.log(JSON.stringify({ deliveries }));
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
