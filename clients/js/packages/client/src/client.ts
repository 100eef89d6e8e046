/**
 * The Courtside client (docs/client.md): one WebSocket to `/ws`, reconnected with backoff and
 * full jitter, a token from `getToken` refreshed before it expires, subscriptions resumed from
 * their positions after every reconnect, and calls (publish, rpc, history, presence) that wait
 * for the connection and resolve on the server's reply. Publishes carry an idempotency key and
 * are sent again after a lost connection or a temporary error, never stored twice.
 */

import { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js';
import { Emitter } from './emitter.js';
import { CourtsideError } from './errors.js';
import { MemoryPositionStore, type PositionStore } from './positions.js';
import {
  decodeMessage,
  encodeCommand,
  type ConnectResult,
  type HistoryResult,
  type PresenceClient,
  type PresenceStats,
  type Publication,
  type PublishResult,
  type Push,
  type ServerFrame,
  type SubscribeResult,
} from './protocol.js';
import { Subscription, SubscriptionCode, type SubscriptionOptions } from './subscription.js';
import { randomId } from './random.js';
import { ClientCode, type ClientEvents, type ClientOptions, type ClientState, type HistoryOptions, type PublishOptions, type WebSocketConstructor, type WebSocketLike } from './options.js';

export { ClientCode } from './options.js';
export type { ClientEvents, ClientOptions, ClientState, HistoryOptions, PresenceInfo, PublishOptions, StateEvent, WebSocketConstructor, WebSocketLike } from './options.js';

/** The most frames sent in one WebSocket message (the server refuses more than its burst). */
const FRAMES_PER_MESSAGE = 100;

/** A call waiting to be sent or answered. */
interface Call {
  method: string;
  params: unknown;
  resolve: (result: unknown) => void;
  reject: (error: CourtsideError) => void;
  /** Sent again after a lost connection or a temporary error (publish, reads), until `deadline`. */
  resend: boolean;
  deadline: number;
  attempt: number;
  timer?: ReturnType<typeof setTimeout>;
}

export class Client extends Emitter<ClientEvents> {
  private currentState: ClientState = 'disconnected';
  private socket: WebSocketLike | undefined;
  /** Counts sockets; callbacks of an older one are ignored. */
  private generation = 0;
  private attempt = 0;
  private nextId = 1;
  private readonly inFlight = new Map<number, Call>();
  private readonly waiting: Call[] = [];
  private readonly subscriptions = new Map<string, Subscription>();
  private outgoing: string[] = [];
  private flushScheduled = false;
  private connectInfo: ConnectResult | undefined;
  private lastReceived = 0;
  private closeFromServer: { code: number; reason: string } | undefined;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private livenessTimer: ReturnType<typeof setInterval> | undefined;
  private connectTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly backoff: BackoffOptions;
  private readonly timeout: number;
  private readonly publishTimeout: number;
  private readonly positions: PositionStore;
  private readonly unwatchNetwork: () => void;
  private readonly webSocketClass: WebSocketConstructor;

  constructor(private readonly options: ClientOptions) {
    super();
    const platform = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    const webSocketClass = options.WebSocket ?? platform;
    if (webSocketClass === undefined) throw new Error('no WebSocket on this platform: pass `WebSocket` (in Node 20, from the `ws` package)');
    this.webSocketClass = webSocketClass;
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.timeout = options.timeout ?? 10_000;
    this.publishTimeout = options.publishTimeout ?? 60_000;
    this.positions = options.positions ?? new MemoryPositionStore();
    this.unwatchNetwork = options.watchNetwork === false ? () => {} : this.watchNetwork();
  }

  get state(): ClientState {
    return this.currentState;
  }

  /** The `connect` reply of the current connection. */
  get connection(): ConnectResult | undefined {
    return this.currentState === 'connected' ? this.connectInfo : undefined;
  }

  /** Starts connecting (and keeps reconnecting) until `disconnect()`. */
  connect(): void {
    if (this.currentState !== 'disconnected') return;
    this.attempt = 0;
    this.setState('connecting', ClientCode.connectCalled, 'connect called');
    void this.open();
  }

  /** Closes the connection and stops reconnecting; waiting calls fail with `disconnected`. */
  disconnect(): void {
    this.stop('disconnected', ClientCode.disconnectCalled, 'disconnect called');
    for (const call of [...this.waiting.splice(0), ...this.inFlight.values()]) {
      clearTimeout(call.timer);
      call.reject(new CourtsideError('disconnected', 'disconnect() was called'));
    }
    this.inFlight.clear();
  }

  /** Disconnects and stops listening to the network. */
  close(): void {
    this.disconnect();
    this.unwatchNetwork();
  }

  /** Follows `channel` (again, from where it left off, if its position is kept). */
  subscribe(channel: string, options: SubscriptionOptions = {}): Subscription {
    const existing = this.subscriptions.get(channel);
    if (existing !== undefined) return existing;
    const subscription = new Subscription(channel, options, this.positions);
    this.subscriptions.set(channel, subscription);
    subscription.transition('subscribing', SubscriptionCode.subscribeCalled, 'subscribe called');
    void subscription.load().then(() => {
      if (this.currentState === 'connected' && this.subscriptions.get(channel) === subscription) this.sendSubscribe(subscription);
    });
    return subscription;
  }

  /** Stops following `channel`. Its position stays kept. */
  unsubscribe(channel: string): void {
    const subscription = this.subscriptions.get(channel);
    if (subscription === undefined) return;
    this.subscriptions.delete(channel);
    if (this.currentState === 'connected' && subscription.state === 'subscribed') {
      this.queueFrame(encodeCommand(this.nextId++, 'unsubscribe', { channel }));
    }
    subscription.transition('unsubscribed', SubscriptionCode.unsubscribeCalled, 'unsubscribe called');
  }

  /** The subscription of `channel`, if the app holds one. */
  getSubscription(channel: string): Subscription | undefined {
    return this.subscriptions.get(channel);
  }

  /** Publishes; resolves once the publication is durable. */
  publish(channel: string, data: unknown, options: PublishOptions = {}): Promise<PublishResult> {
    const params: Record<string, unknown> = { channel, data, idempotency_key: options.idempotencyKey ?? randomId() };
    if (options.key !== undefined) params.key = options.key;
    if (options.remove === true) params.remove = true;
    if (options.event !== undefined) params.event = options.event;
    return this.call<PublishResult>('publish', params, true, options.retryFor ?? this.publishTimeout);
  }

  /** A call the app's backend answers (the server's `rpc` hook). */
  async rpc(method: string, data: unknown = null): Promise<unknown> {
    const result = await this.call<{ data: unknown }>('rpc', { method, data }, false, this.timeout);
    return result.data;
  }

  history(channel: string, options: HistoryOptions = {}): Promise<HistoryResult> {
    return this.call<HistoryResult>('history', { channel, ...options }, true, this.timeout);
  }

  async presence(channel: string): Promise<PresenceClient[]> {
    const result = await this.call<{ clients: PresenceClient[] }>('presence', { channel }, true, this.timeout);
    return result.clients;
  }

  presenceStats(channel: string): Promise<PresenceStats> {
    return this.call<PresenceStats>('presence_stats', { channel }, true, this.timeout);
  }

  // ── the connection ────────────────────────────────────────────────────────────────────

  private setState(state: ClientState, code: number, reason: string): void {
    this.currentState = state;
    this.emit('state', { state, code, reason });
  }

  private webSocketUrl(): string {
    const url = new URL(this.options.url);
    if (url.protocol === 'http:' || url.protocol === 'https:') {
      url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
      url.pathname = `${url.pathname.replace(/\/$/, '')}/ws`;
    }
    return url.toString();
  }

  private async open(): Promise<void> {
    const generation = ++this.generation;
    let token: string | undefined;
    if (this.options.getToken !== undefined) {
      try {
        token = await this.options.getToken();
      } catch {
        if (generation === this.generation) this.retryLater(ClientCode.tokenUnavailable, 'token unavailable');
        return;
      }
    }
    if (generation !== this.generation || this.currentState !== 'connecting') return;
    const socket = new this.webSocketClass(this.webSocketUrl());
    this.socket = socket;
    this.closeFromServer = undefined;
    this.connectTimer = setTimeout(() => this.transportFailed(generation, ClientCode.connectTimeout, 'connect timeout'), this.timeout);
    socket.onopen = () => {
      if (generation !== this.generation) return;
      const params: Record<string, unknown> = {};
      if (token !== undefined) params.token = token;
      if (this.options.presence !== undefined) params.presence = this.options.presence;
      const id = this.nextId++;
      this.inFlight.set(id, {
        method: 'connect',
        params,
        resend: false,
        deadline: Infinity,
        attempt: 0,
        resolve: (result) => this.connected(generation, result as ConnectResult),
        reject: (error) => this.connectRefused(generation, error),
      });
      this.queueFrame(encodeCommand(id, 'connect', params));
    };
    socket.onmessage = (event) => {
      if (generation === this.generation && typeof event.data === 'string') this.received(event.data);
    };
    socket.onclose = (event) => this.closed(generation, event.code, event.reason);
    socket.onerror = () => {};
  }

  private connected(generation: number, result: ConnectResult): void {
    if (generation !== this.generation) return;
    clearTimeout(this.connectTimer);
    this.attempt = 0;
    this.connectInfo = result;
    this.setState('connected', ClientCode.connected, 'connected');
    this.emit('connected', result);
    for (const subscription of this.subscriptions.values()) this.sendSubscribe(subscription);
    for (const call of this.waiting.splice(0)) this.send(call);
    this.scheduleRefresh(result.expires_in_secs);
    this.watchLiveness(generation, result.ping_interval_secs);
  }

  private connectRefused(generation: number, error: CourtsideError): void {
    if (generation !== this.generation) return;
    if (error.code === 101) {
      this.stop('disconnected', ClientCode.unauthorized, error.message);
    } else {
      // 109 (expired: a fresh token next time), 108 (the user's connection quota), others.
      this.dropSocket();
      this.retryLater(error.code === 109 ? ClientCode.tokenUnavailable : ClientCode.transportClosed, error.message);
    }
  }

  private received(text: string): void {
    this.lastReceived = Date.now();
    let frames: ServerFrame[];
    try {
      frames = decodeMessage(text);
    } catch {
      return;
    }
    for (const frame of frames) {
      if (frame.push !== undefined) this.pushed(frame.push);
      else if (frame.id !== undefined) this.answered(frame);
    }
  }

  private answered(frame: ServerFrame & { id?: number }): void {
    const call = frame.id === undefined ? undefined : this.inFlight.get(frame.id);
    if (call === undefined || frame.id === undefined) return;
    this.inFlight.delete(frame.id);
    clearTimeout(call.timer);
    if (frame.error !== undefined) {
      const error = new CourtsideError(frame.error.code, frame.error.message);
      if (call.resend && error.temporary && this.retryCall(call)) return;
      call.reject(error);
    } else {
      call.resolve(frame.result);
    }
  }

  private pushed(push: Push): void {
    const subscription = push.channel === undefined ? undefined : this.subscriptions.get(push.channel);
    if (push.pub !== undefined && subscription !== undefined) {
      if (subscription.state !== 'subscribed') return;
      if (subscription.admit(push.pub) === 'gap') {
        // The server never skips on a live connection; resume from the position to be sure.
        this.transportFailed(this.generation, ClientCode.transportClosed, `a gap on ${subscription.channel}`);
      }
    } else if (push.join !== undefined && subscription !== undefined) {
      subscription.presenceEvent('join', push.join);
    } else if (push.leave !== undefined && subscription !== undefined) {
      subscription.presenceEvent('leave', push.leave);
    } else if (push.unsubscribed !== undefined && subscription !== undefined) {
      this.subscriptions.delete(subscription.channel);
      subscription.transition('unsubscribed', push.unsubscribed.code, push.unsubscribed.reason);
    } else if (push.disconnect !== undefined) {
      this.closeFromServer = { code: push.disconnect.code, reason: push.disconnect.reason };
    } else if (push.notice !== undefined) {
      this.emit('notice', push.notice);
    }
  }

  private closed(generation: number, code: number, reason: string): void {
    if (generation !== this.generation) return;
    // A close frame lost to the network still had its push.
    const told = code === 1006 || code === 1005 ? this.closeFromServer : { code, reason };
    this.dropSocket();
    if (told !== undefined && (told.code === 1002 || (told.code >= 3500 && told.code <= 3999))) {
      this.stop('disconnected', told.code, told.reason);
      return;
    }
    if (told !== undefined && told.code >= 3000) this.retryLater(told.code, told.reason);
    else this.retryLater(ClientCode.transportClosed, 'transport closed');
  }

  /** Gives up on the current socket (it is closed) and reconnects after a backoff delay. */
  private transportFailed(generation: number, code: number, reason: string): void {
    if (generation !== this.generation) return;
    this.dropSocket();
    this.retryLater(code, reason);
  }

  /** Closes the socket, if any, and moves every call and subscription back to waiting. */
  private dropSocket(): void {
    this.generation += 1;
    clearTimeout(this.connectTimer);
    clearTimeout(this.refreshTimer);
    clearInterval(this.livenessTimer);
    this.outgoing = [];
    const socket = this.socket;
    this.socket = undefined;
    if (socket !== undefined) {
      socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
      try {
        socket.close(1000, 'client closing');
      } catch {
        // Closing a socket that never opened may throw; it is gone either way.
      }
    }
    const now = Date.now();
    for (const call of [...this.inFlight.values()]) {
      clearTimeout(call.timer);
      if (call.method === 'connect') continue;
      if (call.resend && now < call.deadline) this.waiting.push(call);
      else call.reject(new CourtsideError('connection_lost', 'the connection was lost before the answer'));
    }
    this.inFlight.clear();
    for (const subscription of this.subscriptions.values()) {
      subscription.transition('subscribing', SubscriptionCode.transportClosed, 'transport closed');
    }
  }

  private retryLater(code: number, reason: string): void {
    if (this.currentState === 'offline' || this.currentState === 'disconnected') return;
    this.setState('connecting', code, reason);
    clearTimeout(this.reconnectTimer);
    const delay = backoffDelay(this.attempt++, this.backoff);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.currentState === 'connecting') void this.open();
    }, delay);
  }

  private stop(state: 'disconnected' | 'offline', code: number, reason: string): void {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.dropSocket();
    // Subscriptions stay wanted (`subscribing`): a later connect() resumes them.
    this.setState(state, code, reason);
  }

  // ── calls ─────────────────────────────────────────────────────────────────────────────

  private call<T>(method: string, params: unknown, resend: boolean, within: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const call: Call = { method, params, resend, deadline: Date.now() + within, attempt: 0, resolve: resolve as (result: unknown) => void, reject };
      if (this.currentState === 'connected') this.send(call);
      else if (this.currentState === 'disconnected') reject(new CourtsideError('disconnected', 'the client is disconnected: call connect() first'));
      else this.waiting.push(call);
    });
  }

  private send(call: Call): void {
    const id = this.nextId++;
    this.inFlight.set(id, call);
    call.timer = setTimeout(() => {
      if (!this.inFlight.delete(id)) return;
      if (call.resend && this.retryCall(call)) return;
      call.reject(new CourtsideError('timeout', `no answer to ${call.method} within ${this.timeout} ms`));
    }, this.timeout);
    this.queueFrame(encodeCommand(id, call.method, call.params));
  }

  /** Sends `call` again after a backoff delay, if its deadline allows; `false` if it does not. */
  private retryCall(call: Call): boolean {
    const delay = backoffDelay(call.attempt++, { minDelay: 250, maxDelay: 5000 });
    if (Date.now() + delay >= call.deadline) return false;
    setTimeout(() => {
      if (this.currentState === 'connected') this.send(call);
      else this.waiting.push(call);
    }, delay);
    return true;
  }

  private sendSubscribe(subscription: Subscription): void {
    const params = subscription.subscribeParams();
    const resumed = params.since !== undefined;
    const id = this.nextId++;
    const call: Call = {
      method: 'subscribe',
      params,
      resend: false,
      deadline: Infinity,
      attempt: 0,
      resolve: (result) => {
        if (this.subscriptions.get(subscription.channel) === subscription) subscription.applySubscribed(result as SubscribeResult, resumed);
      },
      reject: (error) => this.subscribeRefused(subscription, error),
    };
    this.inFlight.set(id, call);
    this.queueFrame(encodeCommand(id, 'subscribe', params));
  }

  private subscribeRefused(subscription: Subscription, error: CourtsideError): void {
    if (this.subscriptions.get(subscription.channel) !== subscription) return;
    if (error.code === 'disconnected') return;
    if (error.temporary) {
      const delay = backoffDelay(subscription.retries++, this.backoff);
      setTimeout(() => {
        if (this.currentState === 'connected' && this.subscriptions.get(subscription.channel) === subscription) this.sendSubscribe(subscription);
      }, delay);
      return;
    }
    this.subscriptions.delete(subscription.channel);
    subscription.transition('unsubscribed', typeof error.code === 'number' ? error.code : 0, error.message);
  }

  /** Frames queued in one turn of the event loop leave in one WebSocket message. */
  private queueFrame(frame: string): void {
    this.outgoing.push(frame);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => {
      this.flushScheduled = false;
      const socket = this.socket;
      const frames = this.outgoing;
      this.outgoing = [];
      if (socket === undefined) return;
      for (let start = 0; start < frames.length; start += FRAMES_PER_MESSAGE) {
        socket.send(frames.slice(start, start + FRAMES_PER_MESSAGE).join('\n'));
      }
    });
  }

  // ── token refresh, liveness, network ─────────────────────────────────────────────────

  private scheduleRefresh(expiresInSecs: number | undefined): void {
    clearTimeout(this.refreshTimer);
    const getToken = this.options.getToken;
    if (expiresInSecs === undefined || getToken === undefined) return;
    const generation = this.generation;
    const expiresAt = Date.now() + expiresInSecs * 1000;
    const refresh = async (attempt: number): Promise<void> => {
      if (generation !== this.generation) return;
      try {
        const token = await getToken();
        if (token === undefined) throw new CourtsideError(101, 'no token');
        const result = await this.call<{ expires_in_secs: number }>('refresh', { token }, false, this.timeout);
        if (generation === this.generation) this.scheduleRefresh(result.expires_in_secs);
      } catch {
        // Try again while the token lasts; when it runs out the server closes with 3003 and
        // the reconnect asks for a fresh token.
        const delay = backoffDelay(attempt, this.backoff);
        if (generation === this.generation && Date.now() + delay < expiresAt) {
          this.refreshTimer = setTimeout(() => void refresh(attempt + 1), delay);
        }
      }
    };
    this.refreshTimer = setTimeout(() => void refresh(0), expiresInSecs * 800);
  }

  private watchLiveness(generation: number, pingIntervalSecs: number): void {
    clearInterval(this.livenessTimer);
    const interval = pingIntervalSecs * 1000;
    this.lastReceived = Date.now();
    let pinged = false;
    this.livenessTimer = setInterval(() => {
      const silent = Date.now() - this.lastReceived;
      if (silent < interval) {
        pinged = false;
      } else if (silent >= interval + this.timeout) {
        this.transportFailed(generation, ClientCode.noPong, 'no pong');
      } else if (!pinged) {
        pinged = true;
        this.queueFrame(encodeCommand(this.nextId++, 'ping', {}));
      }
    }, Math.max(250, Math.min(interval, this.timeout) / 2));
  }

  private watchNetwork(): () => void {
    const target = globalThis as { addEventListener?: (name: string, listener: () => void) => void; removeEventListener?: (name: string, listener: () => void) => void; navigator?: { onLine?: boolean } };
    if (typeof target.addEventListener !== 'function' || typeof target.removeEventListener !== 'function' || target.navigator === undefined) return () => {};
    const offline = () => {
      if (this.currentState === 'connecting' || this.currentState === 'connected') this.stop('offline', ClientCode.offline, 'offline');
    };
    const online = () => {
      // Back from offline, or waiting out a backoff delay (the page loaded with no network):
      // connect now, without one.
      const waiting = this.currentState === 'connecting' && this.reconnectTimer !== undefined;
      if (this.currentState !== 'offline' && !waiting) return;
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = undefined;
      this.attempt = 0;
      this.setState('connecting', ClientCode.onlineAgain, 'online again');
      void this.open();
    };
    target.addEventListener('offline', offline);
    target.addEventListener('online', online);
    const remove = target.removeEventListener.bind(target);
    return () => {
      remove('offline', offline);
      remove('online', online);
    };
  }
}

export type { Publication };
