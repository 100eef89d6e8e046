#!/usr/bin/env node
// Socket.IO fan-out benchmark: N socket.io-client sockets (WebSocket transport) subscribe to one
// channel; a publisher socket emits `publish` at a fixed rate; every socket counts the
// `publication` events it receives. The same generator runs against Courtside and against the
// reference Socket.IO 4.8 server (reference-server.mjs), so the two differ only in the server.
//
//   node bench.mjs --url http://127.0.0.1:18602 --pid SERVER_PID --subscribers 1000 --rate 50 \
//       --duration 20 --payload-bytes 200 [--token JWT] [--channel match:bench]
//
// Prints one JSON report on stdout (progress on stderr): deliveries expected and received,
// deliveries per second, publish->receive latency, and the server's CPU time per delivery read
// from /proc/PID/stat over the measured window.
import { readFileSync } from "node:fs";
import { io } from "socket.io-client";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, index, all) => (arg.startsWith("--") ? [...pairs, [arg.slice(2), all[index + 1]]] : pairs), []),
);
const url = args.url ?? "http://127.0.0.1:8080";
const pid = args.pid ? Number(args.pid) : null;
const subscribers = Number(args.subscribers ?? 1000);
const rate = Number(args.rate ?? 50);
const durationSecs = Number(args.duration ?? 20);
const payloadBytes = Number(args["payload-bytes"] ?? 200);
const channel = args.channel ?? `match:sio-bench-${Date.now()}`;
const token = args.token ?? "";
const log = (line) => process.stderr.write(line + "\n");

/** utime + stime of `pid`, in microseconds (clock ticks of 10 ms). */
function cpuMicros(processId) {
  if (!processId) return null;
  const stat = readFileSync(`/proc/${processId}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

function connect(auth) {
  return new Promise((resolve, reject) => {
    const socket = io(url, { transports: ["websocket"], forceNew: true, reconnection: false, auth });
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", reject);
  });
}

const emitWithAck = (socket, event, argument) => new Promise((resolve) => socket.emit(event, argument, resolve));

let received = 0;
let measuring = false;
const latencies = [];
const sockets = [];
const started = Date.now();
for (let batch = 0; batch < subscribers; batch += 100) {
  const opened = await Promise.all(Array.from({ length: Math.min(100, subscribers - batch) }, () => connect({})));
  for (const socket of opened) {
    socket.on("publication", (publication) => {
      if (!measuring) return;
      received += 1;
      // One latency sample per publication (from the first socket), not per delivery.
      if (socket === sockets[0]) latencies.push(Date.now() - publication.data.t);
    });
    await emitWithAck(socket, "subscribe", { channel });
    sockets.push(socket);
  }
}
log(`connected and subscribed ${sockets.length} sockets in ${(Date.now() - started) / 1000} s`);
const publisher = await connect({ token });

const pad = "x".repeat(Math.max(0, payloadBytes - 40));
let published = 0;
let acknowledged = 0;
measuring = true;
const cpuBefore = cpuMicros(pid);
const windowStart = process.hrtime.bigint();
const tickMs = 10;
const perTick = rate * tickMs / 1000;
let owed = 0;
const ticker = setInterval(() => {
  owed += perTick;
  while (owed >= 1) {
    owed -= 1;
    published += 1;
    publisher.emit("publish", { channel, data: { t: Date.now(), pad } }, () => { acknowledged += 1; });
  }
}, tickMs);
await new Promise((resolve) => setTimeout(resolve, durationSecs * 1000));
clearInterval(ticker);
// Let the last publications arrive.
await new Promise((resolve) => setTimeout(resolve, 2000));
const windowSecs = Number(process.hrtime.bigint() - windowStart) / 1e9;
const cpuAfter = cpuMicros(pid);
measuring = false;

latencies.sort((a, b) => a - b);
const pick = (q) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] : null);
const expected = published * sockets.length;
const serverCpuUs = cpuBefore === null ? null : cpuAfter - cpuBefore;
const report = {
  url,
  subscribers: sockets.length,
  rate_per_sec: rate,
  duration_secs: durationSecs,
  payload_bytes: payloadBytes,
  published,
  acknowledged,
  deliveries_expected: expected,
  deliveries: received,
  deliveries_per_sec: Math.round(received / windowSecs),
  delivered_ratio: expected ? Math.round((received / expected) * 10000) / 10000 : null,
  latency_ms_p50: pick(0.5),
  latency_ms_p99: pick(0.99),
  latency_ms_max: latencies.at(-1) ?? null,
  server_cpu_us: serverCpuUs,
  server_cpu_pct: serverCpuUs === null ? null : Math.round((serverCpuUs / 1e6 / windowSecs) * 1000) / 10,
  server_cpu_us_per_delivery: serverCpuUs === null || received === 0 ? null : Math.round((serverCpuUs / received) * 100) / 100,
};
process.stdout.write(JSON.stringify(report, null, 2) + "\n");
for (const socket of sockets) socket.close();
publisher.close();
process.exit(0);
