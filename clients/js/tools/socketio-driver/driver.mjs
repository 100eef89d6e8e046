#!/usr/bin/env node
// Drives real socket.io-client sockets for Courtside's server tests. Reads commands, one JSON
// object per line, from stdin; writes what happens, one JSON object per line, to stdout:
//
//   {"cmd":"open","name":"a","url":"http://127.0.0.1:8080","options":{...},"version":4}
//       -> {"name":"a","event":"connect","id":…,"recovered":…} | {"name":"a","event":"connect_error","message":…,"data":…}
//   {"cmd":"emit","name":"a","event":"subscribe","args":[{…}],"ack":true,"tag":"t1"}
//       -> {"name":"a","ack":"t1","args":[…]}   (with "ack": true; a 5 s timeout answers {"ack":"t1","timeout":true})
//   {"cmd":"listen","name":"a","event":"match:created"}
//       -> {"name":"a","listened":"match:created","args":[…]} for each such event, through socket.on(event, …)
//   {"cmd":"close","name":"a"}   {"cmd":"exit"}
//
// Every event a socket receives is written as {"name":"a","event":…,"args":[…]}; disconnects as
// {"name":"a","event":"disconnect","reason":…}; the transport in use after an upgrade as
// {"name":"a","event":"upgrade","transport":…}. The socket is used exactly as an app would.
import { createInterface } from "node:readline";
import { io as io4 } from "socket.io-client";
import { io as io3 } from "socket.io-client-v3";

const sockets = new Map();
const write = (line) => process.stdout.write(JSON.stringify(line) + "\n");

function open({ name, url, options = {}, version = 4 }) {
  const io = version === 3 ? io3 : io4;
  const socket = io(url, { forceNew: true, ...options });
  sockets.set(name, socket);
  socket.on("connect", () => {
    write({ name, event: "connect", id: socket.id, recovered: socket.recovered ?? false, transport: socket.io.engine.transport.name });
    socket.io.engine.once("upgrade", (transport) => write({ name, event: "upgrade", transport: transport.name }));
  });
  socket.on("connect_error", (error) => write({ name, event: "connect_error", message: error.message, data: error.data ?? null }));
  socket.on("disconnect", (reason) => write({ name, event: "disconnect", reason }));
  socket.onAny((event, ...args) => write({ name, event, args }));
}

function emit({ name, event, args = [], ack = false, tag }) {
  const socket = sockets.get(name);
  if (!socket) return write({ name, error: `no socket ${name}` });
  if (!ack) return socket.emit(event, ...args);
  // socket.io-client 3 has no `timeout()`: the same 5 s limit by hand.
  let answered = false;
  const timer = setTimeout(() => { answered = true; write({ name, ack: tag, timeout: true }); }, 5000);
  socket.emit(event, ...args, (...answer) => {
    if (answered) return;
    answered = true;
    clearTimeout(timer);
    write({ name, ack: tag, args: answer });
  });
}

function listen({ name, event }) {
  const socket = sockets.get(name);
  if (!socket) return write({ name, error: `no socket ${name}` });
  socket.on(event, (...args) => write({ name, listened: event, args }));
}

const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (!line.trim()) return;
  const command = JSON.parse(line);
  switch (command.cmd) {
    case "open": return open(command);
    case "emit": return emit(command);
    case "listen": return listen(command);
    case "close": sockets.get(command.name)?.close(); return write({ name: command.name, event: "closed" });
    case "exit": for (const socket of sockets.values()) socket.close(); process.exit(0);
    default: write({ error: `unknown command ${command.cmd}` });
  }
});
lines.on("close", () => process.exit(0));
write({ event: "ready" });
