/**
 * One connection per browser, shared by its tabs (docs/client.md §4): the tabs of an origin
 * elect a leader with the Web Locks API (the lock is held while the leader tab lives, and passes
 * to another tab when it closes); only the leader holds a `Client` and its WebSocket. Every tab —
 * the leader's too — talks to it over a BroadcastChannel: it follows channels (the leader keeps
 * one subscription per channel, however many tabs follow it, and sends each tab the channel's
 * state, then every publication) and makes calls (publish, rpc, history, presence), which a new
 * leader receives again if the old one closed before answering (publishes keep their
 * idempotency key, so nothing is stored twice). Subscriptions a tab holds are the same
 * `Subscription` objects as a lone client's: positions, keyed state, duplicates dropped, and a
 * gap (a publication lost in a change of leader) filled from history.
 */

import type { Client as ClientType, ClientOptions, ClientState, HistoryOptions, PublishOptions, StateEvent } from './client.js';
import { Client } from './client.js';
import { Emitter } from './emitter.js';
import { CourtsideError } from './errors.js';
import { MemoryPositionStore } from './positions.js';
import type { ConnectResult, HistoryResult, PresenceClient, PresenceStats, Publication, PublishResult, StreamPosition } from './protocol.js';
import { randomId } from './random.js';
import { Subscription, SubscriptionCode, type SubscriptionOptions, type SubscriptionState } from './subscription.js';

/** The part of the Web Locks API the election uses. */
export interface LockManagerLike {
  request(name: string, callback: (lock: unknown) => Promise<void>): Promise<void>;
}

/** The part of BroadcastChannel the tabs talk over. */
export interface BroadcastChannelLike {
  postMessage(message: unknown): void;
  onmessage: ((event: { data: unknown }) => void) | null;
  close(): void;
}

export interface SharedClientOptions extends ClientOptions {
  /** Names the shared connection (tabs with the same name share one). Default `courtside`. */
  name?: string;
  /** Default: `navigator.locks`. Without one, each tab keeps its own connection. */
  locks?: LockManagerLike;
  /** Default: the platform's `BroadcastChannel`. */
  broadcastChannel?: new (name: string) => BroadcastChannelLike;
}

type CallMethod = 'publish' | 'rpc' | 'history' | 'presence' | 'presenceStats';

/** What happened to a channel the leader follows. */
type ChannelEvent =
  | { event: 'publication'; publication: Publication }
  | { event: 'state'; state: SubscriptionState; code: number; reason: string }
  | { event: 'join' | 'leave'; client: PresenceClient };

/** What tabs say to each other (`from`: the sending tab). */
type Message =
  | { type: 'hello'; from: string }
  | { type: 'leader'; from: string; state: StateEvent; connection: ConnectResult | undefined }
  | { type: 'state'; from: string; state: StateEvent; connection: ConnectResult | undefined }
  | { type: 'follow'; from: string; channel: string; keyed: boolean }
  | { type: 'unfollow'; from: string; channel: string }
  | { type: 'bye'; from: string }
  | { type: 'sync'; from: string; channel: string; state: SubscriptionState; position: StreamPosition | undefined; entries: Array<[string, unknown]> | undefined; reset: boolean }
  | ({ type: 'sub'; from: string; channel: string } & ChannelEvent)
  | { type: 'call'; from: string; id: string; method: CallMethod; args: unknown[] }
  | { type: 'answer'; from: string; to: string; id: string; result?: unknown; error?: { code: number | string; message: string } };

export interface SharedClientEvents extends Record<string, unknown> {
  state: StateEvent;
  /** This tab became the one holding the connection. */
  leader: undefined;
}

interface PendingCall {
  method: CallMethod;
  args: unknown[];
  resolve: (result: unknown) => void;
  reject: (error: CourtsideError) => void;
}

/** The tab's view of the shared connection, with the calls of a `Client`. */
export class SharedClient extends Emitter<SharedClientEvents> {
  readonly tabId = randomId();
  private currentState: StateEvent = { state: 'connecting', code: 0, reason: 'connect called' };
  private currentConnection: ConnectResult | undefined;
  private readonly subscriptions = new Map<string, Subscription>();
  private readonly pending = new Map<string, PendingCall>();
  /** Gap fills under way, by channel: publications that arrive meanwhile wait here. */
  private readonly filling = new Map<string, Publication[]>();
  private readonly bus: BroadcastChannelLike;
  private leader: TabLeader | undefined;
  private readonly mirrors = new MemoryPositionStore();
  private closed = false;
  /** The tab holding the connection, as last announced. */
  private leaderTab: string | undefined;

  constructor(private readonly options: SharedClientOptions) {
    super();
    const name = `courtside:${options.name ?? 'courtside'}`;
    const Channel = options.broadcastChannel ?? (globalThis as { BroadcastChannel?: new (name: string) => BroadcastChannelLike }).BroadcastChannel;
    const locks = options.locks ?? (globalThis as { navigator?: { locks?: LockManagerLike } }).navigator?.locks;
    if (Channel === undefined) throw new Error('no BroadcastChannel on this platform');
    this.bus = new Channel(name);
    this.bus.onmessage = (event) => this.received(event.data as Message);
    if (locks === undefined) {
      this.lead(name);
    } else {
      void locks.request(`${name}:leader`, () => {
        if (this.closed) return Promise.resolve();
        this.lead(name);
        // Held until the tab closes (or `close()`): then another tab's request is granted.
        return new Promise<void>((release) => (this.releaseLeadership = release));
      });
    }
    this.send({ type: 'hello', from: this.tabId });
    const target = globalThis as { addEventListener?: (name: string, listener: () => void) => void };
    target.addEventListener?.('pagehide', () => this.close());
  }

  private releaseLeadership: (() => void) | undefined;

  get state(): ClientState {
    return this.currentState.state;
  }

  /** The shared connection's `connect` reply. */
  get connection(): ConnectResult | undefined {
    return this.currentState.state === 'connected' ? this.currentConnection : undefined;
  }

  /** Whether this tab holds the connection. */
  get isLeader(): boolean {
    return this.leader !== undefined;
  }

  subscribe(channel: string, options: SubscriptionOptions = {}): Subscription {
    const existing = this.subscriptions.get(channel);
    if (existing !== undefined) return existing;
    // Positions live with the leader; a tab's subscription only mirrors what it is sent.
    const subscription = new Subscription(channel, options, this.mirrors);
    this.subscriptions.set(channel, subscription);
    subscription.transition('subscribing', SubscriptionCode.subscribeCalled, 'subscribe called');
    this.send({ type: 'follow', from: this.tabId, channel, keyed: options.keyed === true });
    return subscription;
  }

  unsubscribe(channel: string): void {
    const subscription = this.subscriptions.get(channel);
    if (subscription === undefined) return;
    this.subscriptions.delete(channel);
    this.send({ type: 'unfollow', from: this.tabId, channel });
    subscription.transition('unsubscribed', SubscriptionCode.unsubscribeCalled, 'unsubscribe called');
  }

  getSubscription(channel: string): Subscription | undefined {
    return this.subscriptions.get(channel);
  }

  publish(channel: string, data: unknown, options: PublishOptions = {}): Promise<PublishResult> {
    // The key is fixed here, so a call sent again to a new leader is the same publication.
    return this.call('publish', [channel, data, { ...options, idempotencyKey: options.idempotencyKey ?? randomId() }]) as Promise<PublishResult>;
  }

  rpc(method: string, data: unknown = null): Promise<unknown> {
    return this.call('rpc', [method, data]);
  }

  history(channel: string, options: HistoryOptions = {}): Promise<HistoryResult> {
    return this.call('history', [channel, options]) as Promise<HistoryResult>;
  }

  presence(channel: string): Promise<PresenceClient[]> {
    return this.call('presence', [channel]) as Promise<PresenceClient[]>;
  }

  presenceStats(channel: string): Promise<PresenceStats> {
    return this.call('presenceStats', [channel]) as Promise<PresenceStats>;
  }

  /** Leaves: this tab's channels are let go, and its leadership (if any) passes to another tab. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.send({ type: 'bye', from: this.tabId });
    this.leader?.close();
    this.leader = undefined;
    this.releaseLeadership?.();
    this.bus.close();
    for (const call of this.pending.values()) call.reject(new CourtsideError('disconnected', 'the client was closed'));
    this.pending.clear();
  }

  private call(method: CallMethod, args: unknown[]): Promise<unknown> {
    if (this.closed) return Promise.reject(new CourtsideError('disconnected', 'the client was closed'));
    return new Promise((resolve, reject) => {
      const id = randomId();
      this.pending.set(id, { method, args, resolve, reject });
      this.send({ type: 'call', from: this.tabId, id, method, args });
    });
  }

  private lead(name: string): void {
    if (this.closed || this.leader !== undefined) return;
    const clientOptions: ClientOptions = { ...this.options };
    this.leader = new TabLeader(new Client(clientOptions), this.tabId, (message) => this.send(message));
    this.emit('leader', undefined);
  }

  /** To every tab, this one included. */
  private send(message: Message): void {
    if (this.closed && message.type !== 'bye') return;
    this.bus.postMessage(message);
    queueMicrotask(() => this.received(message));
  }

  private received(message: Message): void {
    if (this.closed) return;
    this.leader?.received(message);
    switch (message.type) {
      case 'leader':
        this.setState(message.state, message.connection);
        if (message.from !== this.leaderTab) {
          // A new leader (this tab, maybe): follow again what this tab follows, and send again
          // what the old one never answered.
          this.leaderTab = message.from;
          for (const [channel, subscription] of this.subscriptions) this.send({ type: 'follow', from: this.tabId, channel, keyed: subscription.options.keyed === true });
          for (const [id, call] of this.pending) this.send({ type: 'call', from: this.tabId, id, method: call.method, args: call.args });
        }
        return;
      case 'state':
        this.setState(message.state, message.connection);
        return;
      case 'sync':
        this.sync(message);
        return;
      case 'sub':
        this.subscriptionEvent(message);
        return;
      case 'answer': {
        if (message.to !== this.tabId) return;
        const call = this.pending.get(message.id);
        if (call === undefined) return;
        this.pending.delete(message.id);
        if (message.error === undefined) call.resolve(message.result);
        else call.reject(new CourtsideError(message.error.code as number, message.error.message));
        return;
      }
      default:
        return;
    }
  }

  private setState(state: StateEvent, connection: ConnectResult | undefined): void {
    this.currentConnection = connection;
    if (state.state === this.currentState.state && state.code === this.currentState.code) return;
    this.currentState = state;
    this.emit('state', state);
  }

  private sync(message: Extract<Message, { type: 'sync' }>): void {
    const subscription = this.subscriptions.get(message.channel);
    if (subscription === undefined) return;
    if (message.state !== 'subscribed' || message.position === undefined) {
      subscription.transition(message.state, SubscriptionCode.transportClosed, 'the shared connection is subscribing');
      return;
    }
    const position = message.position;
    const current = subscription.position;
    if (current !== undefined && !message.reset && current.epoch === position.epoch) {
      // Up to date through the publications the leader sent before this: only the state moves.
      subscription.transition('subscribed', SubscriptionCode.subscribed, 'subscribed');
      return;
    }
    const snapshot = message.entries?.map(([key, data]): Publication => ({ epoch: position.epoch, offset: 0, time: 0, key, data }));
    const result = { epoch: position.epoch, offset: position.offset, publications: [], ...(snapshot === undefined ? {} : { snapshot }) };
    // A tab that held a position and is told otherwise was reset: it says so to the app.
    subscription.applySubscribed(current === undefined ? result : { ...result, recovered: false }, current !== undefined);
  }

  private subscriptionEvent(message: Extract<Message, { type: 'sub' }>): void {
    const subscription = this.subscriptions.get(message.channel);
    if (subscription === undefined) return;
    if (message.event === 'state') {
      if (message.state !== 'subscribed') subscription.transition(message.state, message.code, message.reason);
      if (message.state === 'unsubscribed') this.subscriptions.delete(message.channel);
    } else if (message.event === 'publication') {
      this.admit(subscription, message.publication);
    } else {
      subscription.presenceEvent(message.event, message.client);
    }
  }

  /** Delivers a publication once and in order; a gap is filled from history first. */
  private admit(subscription: Subscription, publication: Publication): void {
    const waiting = this.filling.get(subscription.channel);
    if (waiting !== undefined) {
      waiting.push(publication);
      return;
    }
    // Before its first sync a tab has no place in the stream: the sync's state includes these.
    if (subscription.position === undefined || subscription.admit(publication) !== 'gap') return;
    const after = subscription.position?.offset ?? 0;
    const queued = [publication];
    this.filling.set(subscription.channel, queued);
    this.history(subscription.channel, { after, limit: 1000 })
      .then((page) => {
        for (const missed of page.publications) subscription.admit(missed);
      })
      .catch(() => {})
      .finally(() => {
        this.filling.delete(subscription.channel);
        for (const next of queued) subscription.admit(next);
      });
  }
}

/** The leader's side: the one `Client`, the channels every tab follows, the calls it answers. */
class TabLeader {
  /** Tabs following each channel. */
  private readonly followers = new Map<string, Set<string>>();
  private readonly listening = new Map<string, Array<() => void>>();
  private readonly unlistenState: () => void;

  constructor(
    private readonly client: ClientType,
    private readonly tabId: string,
    private readonly send: (message: Message) => void,
  ) {
    this.unlistenState = client.on('state', (state) => this.send({ type: 'state', from: tabId, state, connection: client.connection }));
    client.connect();
    this.announce();
  }

  private announce(): void {
    const state: StateEvent = { state: this.client.state, code: 0, reason: 'a tab took the shared connection' };
    this.send({ type: 'leader', from: this.tabId, state, connection: this.client.connection });
  }

  close(): void {
    this.unlistenState();
    for (const unlisten of this.listening.values()) for (const off of unlisten) off();
    this.client.close();
  }

  received(message: Message): void {
    switch (message.type) {
      case 'hello':
        if (message.from !== this.tabId) this.announce();
        return;
      case 'follow':
        this.follow(message.from, message.channel, message.keyed);
        return;
      case 'unfollow':
        this.unfollow(message.from, message.channel);
        return;
      case 'bye':
        for (const channel of [...this.followers.keys()]) this.unfollow(message.from, channel);
        return;
      case 'call':
        void this.answer(message);
        return;
      default:
        return;
    }
  }

  private follow(tab: string, channel: string, keyed: boolean): void {
    let tabs = this.followers.get(channel);
    if (tabs === undefined) {
      tabs = new Set();
      this.followers.set(channel, tabs);
      const subscription = this.client.subscribe(channel, { keyed });
      const forward = (event: ChannelEvent) => this.send({ type: 'sub', from: this.tabId, channel, ...event });
      this.listening.set(channel, [
        subscription.on('publication', (publication) => forward({ event: 'publication', publication })),
        subscription.on('state', ({ state, code, reason }) => {
          if (state === 'subscribed') this.sendSync(channel, subscription, false);
          else forward({ event: 'state', state, code, reason });
        }),
        subscription.on('reset', () => this.sendSync(channel, subscription, true)),
        subscription.on('join', (client) => forward({ event: 'join', client })),
        subscription.on('leave', (client) => forward({ event: 'leave', client })),
      ]);
    }
    tabs.add(tab);
    const subscription = this.client.getSubscription(channel);
    if (subscription?.state === 'subscribed') this.sendSync(channel, subscription, false);
  }

  /** Tells every tab following `channel` where it stands, with its keyed state. */
  private sendSync(channel: string, subscription: Subscription, reset: boolean): void {
    const entries = subscription.options.keyed === true ? [...subscription.entries] : undefined;
    // A reset is told before the subscription calls itself subscribed again: it is, already.
    const state = reset ? 'subscribed' : subscription.state;
    this.send({ type: 'sync', from: this.tabId, channel, state, position: subscription.position, entries, reset });
  }

  private unfollow(tab: string, channel: string): void {
    const tabs = this.followers.get(channel);
    if (tabs === undefined || !tabs.delete(tab) || tabs.size > 0) return;
    this.followers.delete(channel);
    for (const off of this.listening.get(channel) ?? []) off();
    this.listening.delete(channel);
    this.client.unsubscribe(channel);
  }

  private async answer(message: Extract<Message, { type: 'call' }>): Promise<void> {
    const reply = (answer: { result?: unknown; error?: { code: number | string; message: string } }) =>
      this.send({ type: 'answer', from: this.tabId, to: message.from, id: message.id, ...answer });
    try {
      const [first, second, third] = message.args;
      let result: unknown;
      switch (message.method) {
        case 'publish':
          result = await this.client.publish(first as string, second, (third ?? {}) as PublishOptions);
          break;
        case 'rpc':
          result = await this.client.rpc(first as string, second);
          break;
        case 'history':
          result = await this.client.history(first as string, (second ?? {}) as HistoryOptions);
          break;
        case 'presence':
          result = await this.client.presence(first as string);
          break;
        case 'presenceStats':
          result = await this.client.presenceStats(first as string);
          break;
      }
      reply({ result });
    } catch (error) {
      const failure = error instanceof CourtsideError ? error : new CourtsideError('connection_lost', String(error));
      reply({ error: { code: failure.code, message: failure.message } });
    }
  }
}
