/**
 * What a client is made with and what it tells: its options, its states and the codes of their
 * transitions (docs/client.md §1), the options of its calls, and the WebSocket it needs.
 */

import type { BackoffOptions } from './backoff.js';
import type { PositionStore } from './positions.js';
import type { ConnectResult, Push } from './protocol.js';

export type ClientState = 'disconnected' | 'connecting' | 'connected' | 'offline';

/** The client's own transition codes (docs/client.md §1); server close codes pass through. */
export const ClientCode = {
  connectCalled: 0,
  transportClosed: 1,
  onlineAgain: 2,
  disconnectCalled: 3,
  offline: 4,
  connectTimeout: 5,
  tokenUnavailable: 6,
  noPong: 7,
  connected: 8,
  unauthorized: 9,
} as const;

export interface StateEvent {
  state: ClientState;
  code: number;
  reason: string;
}

/** The parts of a WebSocket the client uses (browsers' own, or `ws` in Node). */
export interface WebSocketLike {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface PresenceInfo {
  status?: string;
  location?: string;
  device?: string;
}

export interface ClientOptions {
  /** The server: `http://host:port` (the WebSocket is `/ws` there) or a `ws://…/ws` URL. */
  url: string;
  /** Called before every connect and before the token expires; `undefined`: connect anonymously. */
  getToken?: () => Promise<string | undefined>;
  /** The WebSocket class (default: the platform's; in Node 20, pass `WebSocket` from `ws`). */
  WebSocket?: WebSocketConstructor;
  backoff?: Partial<BackoffOptions>;
  /** Milliseconds a connect or a call may wait for its reply. Default 10000. */
  timeout?: number;
  /** Milliseconds a publish keeps trying (with the same idempotency key). Default 60000. */
  publishTimeout?: number;
  /** Where subscription positions are kept (default: memory). */
  positions?: PositionStore;
  /** What the connection says about itself in presence. */
  presence?: PresenceInfo;
  /** Listen to the platform's `online`/`offline` events (browsers). Default true where they exist. */
  watchNetwork?: boolean;
}

export interface PublishOptions {
  key?: string;
  /** Removes `key` from the channel's keyed state. */
  remove?: boolean;
  /** The event name Socket.IO clients receive it as. */
  event?: string;
  /** Default: a random UUID per call. */
  idempotencyKey?: string;
  /**
   * Milliseconds the publish keeps trying after a lost connection or a temporary error
   * (default: `publishTimeout`); 0 makes one attempt.
   */
  retryFor?: number;
}

export interface HistoryOptions {
  after?: number;
  limit?: number;
}

export interface ClientEvents extends Record<string, unknown> {
  state: StateEvent;
  connected: ConnectResult;
  notice: NonNullable<Push['notice']>;
}
