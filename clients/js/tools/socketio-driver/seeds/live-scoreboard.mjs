// Seed 004's client code, run unchanged against Courtside (examples/live-scoreboard.toml):
// `ScoreboardWebSocket` and the `useScoreboard` hook as the seed writes them, with only the
// TypeScript types removed and React's state setters replaced by a harness that reports every
// state change, one JSON object per line on stdout. Stdin takes harness commands, one per line:
// `subscribeToUserScore <id>`, `unsubscribe` (what the app would do to leave the scoreboard),
// `ping`, `disconnect`.
//
// REACT_APP_WS_URL and TOKEN come from the environment, as in the app.
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const report = (line) => process.stdout.write(JSON.stringify(line) + "\n");
console.log = (...args) => report({ log: args.map(String).join(" ") });
console.error = (...args) => report({ error: args.map(String).join(" ") });

// ---- seed 004, "Client-Side Implementation" (types removed) ----
class ScoreboardWebSocket {
  socket = null;
  reconnectAttempts = 0;
  maxReconnectAttempts = 5;
  reconnectDelay = 1000;

  constructor(token, onScoreboardUpdate, onUserScoreUpdate, onSystemNotification) {
    this.token = token;
    this.onScoreboardUpdate = onScoreboardUpdate;
    this.onUserScoreUpdate = onUserScoreUpdate;
    this.onSystemNotification = onSystemNotification;
  }

  connect() {
    return new Promise((resolve, reject) => {
      this.socket = io(process.env.REACT_APP_WS_URL, {
        auth: { token: this.token },
        transports: ['websocket', 'polling'],
        timeout: 20000
      });

      this.socket.on('connect', () => {
        console.log('Connected to scoreboard websocket');
        this.reconnectAttempts = 0;
        resolve();
      });

      this.socket.on('disconnect', (reason) => {
        console.log('Disconnected from websocket:', reason);
        if (reason === 'io server disconnect') {
          // Server initiated disconnect, reconnect manually
          this.handleReconnection();
        }
      });

      this.socket.on('connect_error', (error) => {
        console.error('Connection error:', error);
        reject(error);
      });

      // Event listeners
      this.socket.on('leaderboard_refresh', this.onScoreboardUpdate);
      this.socket.on('user_score_update', this.onUserScoreUpdate);
      this.socket.on('system_notification', this.onSystemNotification);
    });
  }

  subscribeToScoreboard() {
    this.socket?.emit('subscribe_scoreboard');
  }

  subscribeToUserScore(userId) {
    this.socket?.emit('subscribe_user_score', userId);
  }

  handleReconnection() {
    if (this.reconnectAttempts >= this.maxReconnectAttempts) {
      console.error('Max reconnection attempts reached');
      return;
    }

    setTimeout(() => {
      this.reconnectAttempts++;
      console.log(`Reconnection attempt ${this.reconnectAttempts}`);
      this.connect().catch(() => this.handleReconnection());
    }, this.reconnectDelay * Math.pow(2, this.reconnectAttempts));
  }

  disconnect() {
    this.socket?.disconnect();
    this.socket = null;
  }
}

// ---- seed 004, `useScoreboard`: the effect's body, with each setter reporting its state ----
const setLeaderboard = (data) => report({ state: "leaderboard", data });
const setUserScore = (data) => report({ state: "userScore", data });
const setNotifications = (data) => report({ state: "notification", data });
const setConnectionStatus = (status) => report({ state: "connectionStatus", status });
const wsRef = { current: null };
const token = process.env.TOKEN;

setConnectionStatus('connecting');

wsRef.current = new ScoreboardWebSocket(
  token,
  (data) => setLeaderboard(data),
  (data) => setUserScore(data),
  (data) => setNotifications(data)
);

wsRef.current.connect()
  .then(() => {
    setConnectionStatus('connected');
    wsRef.current?.subscribeToScoreboard();
  })
  .catch((error) => {
    setConnectionStatus('disconnected');
    report({ state: "connectError", message: error.message });
  });

// ---- harness: what else the app calls, and what arrives that the seed does not listen for ----
const watched = () => wsRef.current?.socket;
const attach = () => {
  const socket = watched();
  if (!socket || socket.__reported) return;
  socket.__reported = true;
  socket.on('scoreboard_update', (data) => report({ state: "scoreboardUpdate", data }));
  socket.on('pong', () => report({ state: "pong" }));
  socket.on('error', (data) => report({ state: "error", data }));
  socket.on('disconnect', (reason) => report({ state: "disconnect", reason }));
  socket.on('connect', () => report({ state: "connect", recovered: socket.recovered ?? false }));
};
attach();
setInterval(attach, 20);

createInterface({ input: process.stdin }).on("line", (line) => {
  const [command, argument] = line.trim().split(" ");
  if (command === "subscribeToUserScore") wsRef.current?.subscribeToUserScore(argument);
  if (command === "unsubscribe") wsRef.current?.socket?.emit('unsubscribe_scoreboard');
  if (command === "ping") wsRef.current?.socket?.emit('ping');
  if (command === "disconnect") { wsRef.current?.disconnect(); process.exit(0); }
});
