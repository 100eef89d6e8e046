/**
 * The wire protocol's shapes (docs/protocol.md): what the client sends and what the server
 * answers and pushes. Only types and the one frame encoder; no I/O.
 */

/** A place in a channel's stream: everything up to `offset` in `epoch` was delivered. */
export interface StreamPosition {
  epoch: string;
  offset: number;
}

/** One publication, as the server delivers it. */
export interface Publication {
  epoch: string;
  offset: number;
  /** Commit time on the server, milliseconds since the Unix epoch. */
  time: number;
  key?: string;
  removed?: boolean;
  event?: string;
  data: unknown;
}

export interface ConnectResult {
  client: string;
  user: string;
  version: string;
  ping_interval_secs: number;
  expires_in_secs?: number;
}

export interface SubscribeResult {
  epoch: string;
  offset: number;
  recovered?: boolean;
  publications: Publication[];
  snapshot?: Publication[];
}

export interface PublishResult {
  epoch: string;
  offset: number;
  duplicate?: boolean;
}

export interface HistoryResult {
  epoch: string;
  offset: number;
  earliest: number;
  publications: Publication[];
}

export interface PresenceClient {
  client: string;
  user: string;
  status?: string;
  location?: string;
  device?: string;
}

export interface PresenceStats {
  clients: number;
  users: number;
}

/** The server's error body (docs/protocol.md §7). */
export interface ErrorBody {
  code: number;
  message: string;
}

export interface Push {
  channel?: string;
  pub?: Publication;
  join?: PresenceClient;
  leave?: PresenceClient;
  unsubscribed?: { code: number; reason: string };
  disconnect?: { code: number; reason: string; reconnect: boolean };
  notice?: { type: string; message: string; severity: string; timestamp: string; duration: number };
}

/** One frame from the server: a reply (with `id`) or a push. */
export interface ServerFrame {
  id?: number;
  result?: unknown;
  error?: ErrorBody;
  push?: Push;
}

/** One command frame: `{"id":…,"<method>":params}`. */
export function encodeCommand(id: number, method: string, params: unknown): string {
  return JSON.stringify({ id, [method]: params });
}

/** The frames of one WebSocket message (frames are separated by `\n`). */
export function decodeMessage(text: string): ServerFrame[] {
  const frames: ServerFrame[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const value: unknown = JSON.parse(line);
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      frames.push(value as ServerFrame);
    }
  }
  return frames;
}
