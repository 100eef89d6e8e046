#!/usr/bin/env node
// The reference for Courtside's Socket.IO benchmark: a plain Socket.IO 4.8 server doing what an
// app's own server does for fan-out — `subscribe` joins a room, `publish` emits to the room —
// with nothing stored. Usage: node reference-server.mjs PORT
import { createServer } from "node:http";
import { Server } from "socket.io";

const port = Number(process.argv[2] ?? 18600);
const httpServer = createServer();
const io = new Server(httpServer, { transports: ["websocket", "polling"] });
io.on("connection", (socket) => {
  socket.on("subscribe", ({ channel }, ack) => {
    socket.join(channel);
    ack?.({ channel });
  });
  socket.on("publish", ({ channel, data }, ack) => {
    io.to(channel).emit("publication", { channel, data });
    ack?.({});
  });
});
httpServer.listen(port, "127.0.0.1", () => process.stdout.write(JSON.stringify({ listening: port, pid: process.pid }) + "\n"));
