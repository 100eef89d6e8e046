// Seed 003's client code, run unchanged against Courtside (examples/love-rank-pulse.toml):
// `useWebSocketSync` and `useLeaderboardSync` as the seed writes them, with React's `useEffect`
// run once and `useState` setters replaced by a harness that reports each state change, one JSON
// object per line on stdout. Every other event the socket receives (`match:result`,
// `leaderboard:player_rank`, `match:created`, …) is reported too. Stdin: `unmount` runs the
// effects' cleanups; `exit`.
//
// VITE_WS_URL and TOKEN come from the environment (TOKEN may be empty: anonymous).
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const report = (line) => process.stdout.write(JSON.stringify(line) + "\n");
const cleanups = [];
// The smallest stand-ins for React: state setters report, effects run once, cleanups on unmount.
const useState = (name) => [null, (value) => report({ state: name, data: typeof value === "function" ? value(null) : value })];
const useEffect = (effect) => { const cleanup = effect(); if (cleanup) cleanups.push(cleanup); };

// ---- seed 003, `/src/hooks/useWebSocketSync.ts` (types removed) ----
function useWebSocketSync(token) {
  const [, setSocket] = useState("socket");
  const [, setConnected] = useState("connected");
  let socket = null;

  useEffect(() => {
    if (!token) return;

    const newSocket = io(process.env.VITE_WS_URL, {
      auth: { token },
      transports: ['websocket', 'polling'],
      reconnection: true,
      reconnectionDelay: 1000,
      reconnectionDelayMax: 5000,
    });

    newSocket.on('connect', () => setConnected(true));
    newSocket.on('disconnect', () => setConnected(false));

    socket = newSocket;
    setSocket(newSocket.id ?? "created");

    return () => {
      newSocket.close();
    };
  });

  return { socket, connected: false };
}

// ---- seed 003, `/src/hooks/useLeaderboardSync.ts` ----
function applyUpdate(prev, update) {
  return update;
}

function useLeaderboardSync(token) {
  const { socket } = useWebSocketSync(token);
  const [, setLeaderboard] = useState("leaderboard");

  useEffect(() => {
    if (!socket) return;

    // Subscribe to updates
    socket.emit('leaderboard:subscribe');

    // Handle initial data
    socket.on('leaderboard:initial', (data) => {
      setLeaderboard(data);
    });

    // Handle real-time updates
    socket.on('leaderboard:update', (update) => {
      setLeaderboard((prev) => applyUpdate(prev, update));
    });

    return () => {
      socket.emit('leaderboard:unsubscribe');
      socket.off('leaderboard:initial');
      socket.off('leaderboard:update');
    };
  });

  // ---- harness: report the events the seed lists but this hook does not listen for ----
  socket?.onAny((event, ...args) => {
    if (event !== 'leaderboard:initial' && event !== 'leaderboard:update') report({ event, data: args[0] });
  });
  return { leaderboard: [] };
}

useLeaderboardSync(process.env.TOKEN ?? "");

createInterface({ input: process.stdin }).on("line", (line) => {
  const command = line.trim();
  if (command === "unmount") { while (cleanups.length) cleanups.pop()(); report({ state: "unmounted" }); }
  if (command === "exit") process.exit(0);
});
