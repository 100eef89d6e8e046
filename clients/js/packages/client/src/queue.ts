/**
 * The offline operation queue (docs/client.md §4): named operations, persisted before anything
 * is sent, run one at a time in the order they were made whenever the client is connected,
 * retried with backoff when the failure may pass, moved to a failed list after `maxAttempts`
 * such failures, and each ended with exactly one fate — applied, merged, conflict or rejected.
 * Nothing is dropped silently. What an operation does on the server is its executor's business
 * (a publish, a REST call); the queue only orders, persists, retries and reports.
 *
 * With `shared`, the tabs of a browser that keep one store run it together: one tab at a time
 * (the holder of a Web Lock) sends the operations, every tab may add, retry or discard them, and
 * every tab hears every fate (over a BroadcastChannel), so an operation is sent by one tab only.
 */

import { backoffDelay, type BackoffOptions } from './backoff.js';
import type { ClientState, PublishOptions, StateEvent } from './client.js';
import { Emitter } from './emitter.js';
import { CourtsideError } from './errors.js';
import type { PublishResult } from './protocol.js';
import { randomId } from './random.js';
import type { BroadcastChannelLike, LockManagerLike } from './shared.js';

/** What the queue needs of a client: its state, and (for `publish`) publishing. `Client` and `SharedClient` both are one. */
export interface QueueClient {
  readonly state: ClientState;
  on(name: 'state', listener: (event: StateEvent) => void): () => void;
  publish(channel: string, data: unknown, options?: PublishOptions): Promise<PublishResult>;
}

/** One operation, as persisted. */
export interface Operation {
  /** A UUID; executors use it as the idempotency key, so a retry is never applied twice. */
  id: string;
  name: string;
  args: unknown;
  /** Milliseconds since the Unix epoch. */
  createdAt: number;
  /** Its place in the queue: operations run in increasing `sequence`. */
  sequence: number;
  /** Attempts that failed for a reason that may pass. */
  attempts: number;
  /** The last such failure. */
  lastError?: { code: number | string; message: string };
  /**
   * The temporary id the app gave what this operation creates (seed 000's `temp-…`): once the
   * server answers with the real id, every later operation's arguments say the real one.
   */
  tempId?: string;
}

/** How an operation ended. */
export type Fate =
  | { kind: 'applied'; result: unknown }
  | { kind: 'merged'; result: unknown }
  | { kind: 'conflict'; conflict: unknown }
  | { kind: 'rejected'; error: { code: number | string; message: string } };

export interface FateEvent {
  operation: Operation;
  fate: Fate;
}

/**
 * Runs one operation on the server and says how it ended. Throwing means the attempt failed:
 * a temporary `CourtsideError` (108, 111, a timeout, a lost connection) or any other exception
 * (a network failure) is retried; a `CourtsideError` with any other code is the fate `rejected`.
 */
export type Executor = (operation: Operation, client: QueueClient) => Promise<Fate>;

/** Where operations are kept across reloads. */
export interface OperationStore {
  /** Every operation kept: the queued ones and the failed list, each in increasing `sequence`. */
  load(): Promise<{ queued: Operation[]; failed: Operation[] }>;
  put(operation: Operation, list: 'queued' | 'failed'): Promise<void>;
  delete(id: string): Promise<void>;
}

export class MemoryOperationStore implements OperationStore {
  private readonly operations = new Map<string, { operation: Operation; list: 'queued' | 'failed' }>();

  async load(): Promise<{ queued: Operation[]; failed: Operation[] }> {
    const all = [...this.operations.values()];
    const pick = (list: 'queued' | 'failed') =>
      all
        .filter((entry) => entry.list === list)
        .map((entry) => structuredClone(entry.operation))
        .sort((a, b) => a.sequence - b.sequence);
    return { queued: pick('queued'), failed: pick('failed') };
  }

  async put(operation: Operation, list: 'queued' | 'failed'): Promise<void> {
    this.operations.set(operation.id, { operation: structuredClone(operation), list });
  }

  async delete(id: string): Promise<void> {
    this.operations.delete(id);
  }
}

export interface QueueOptions {
  /** Executors by operation name. `publish` is built in: `{channel, data, key?, event?}`. */
  executors?: Record<string, Executor>;
  store?: OperationStore;
  /** Failed attempts before an operation moves to the failed list. Default 3 (seeds 000, 001, 002). */
  maxAttempts?: number;
  backoff?: BackoffOptions;
  /**
   * The id the server gave what an operation with a `tempId` created, from its result. Default:
   * the result's `id` when it is a string.
   */
  createdId?: (operation: Operation, result: unknown) => string | undefined;
  /**
   * Run together with the other tabs keeping this store: `true` (the platform's Web Locks and
   * BroadcastChannel, under the name `courtside`), or the name and, for tests, the two.
   */
  shared?: true | { name?: string; locks?: LockManagerLike; broadcastChannel?: new (name: string) => BroadcastChannelLike };
}

/** What the tabs sharing a queue tell each other. */
type QueueMessage = { type: 'changed'; from: string } | { type: 'fate'; from: string; event: FateEvent };

export interface QueueEvents extends Record<string, unknown> {
  fate: FateEvent;
  /** An operation moved to the failed list. */
  failed: Operation;
  /** The queued or failed list changed. */
  change: undefined;
  /** A temporary id has its server id now; later operations say the server's. */
  id: { tempId: string; id: string };
}

function defaultCreatedId(_operation: Operation, result: unknown): string | undefined {
  const id = (result as { id?: unknown } | null | undefined)?.id;
  return typeof id === 'string' ? id : undefined;
}

/** `value` with every string equal to `from` replaced by `to`, at any depth. */
function replaceString(value: unknown, from: string, to: string): unknown {
  if (value === from) return to;
  if (Array.isArray(value)) return value.map((item) => replaceString(item, from, to));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, replaceString(item, from, to)]));
  }
  return value;
}

/** The built-in `publish` operation: a publication whose idempotency key is the operation's id. */
export const publishExecutor: Executor = async (operation, client) => {
  const { channel, data, key, event } = operation.args as { channel: string; data: unknown; key?: string; event?: string };
  // One attempt per call: the queue counts attempts and retries itself.
  const options: { idempotencyKey: string; retryFor: number; key?: string; event?: string } = { idempotencyKey: operation.id, retryFor: 0 };
  if (key !== undefined) options.key = key;
  if (event !== undefined) options.event = event;
  return { kind: 'applied', result: await client.publish(channel, data, options) };
};

export class OperationQueue extends Emitter<QueueEvents> {
  private queued: Operation[] = [];
  private failedList: Operation[] = [];
  private readonly executors: Record<string, Executor>;
  private readonly store: OperationStore;
  private readonly maxAttempts: number;
  private readonly backoff: BackoffOptions;
  private readonly createdId: (operation: Operation, result: unknown) => string | undefined;
  private readonly ids = new Map<string, string>();
  private readonly ready: Promise<void>;
  private running = false;
  private lastSequence = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly waiters = new Map<string, (event: FateEvent) => void>();
  private readonly unwatch: () => void;
  private readonly tab = randomId();
  /** Whether this queue sends operations: always alone, while holding the lock when shared. */
  private draining: boolean;
  private readonly bus: BroadcastChannelLike | undefined;
  private releaseDrain: (() => void) | undefined;
  private closed = false;
  /** The operation being sent, kept as it is while the lists are reloaded. */
  private inFlight: Operation | undefined;

  constructor(
    private readonly client: QueueClient,
    options: QueueOptions = {},
  ) {
    super();
    this.executors = { publish: publishExecutor, ...options.executors };
    this.store = options.store ?? new MemoryOperationStore();
    this.maxAttempts = options.maxAttempts ?? 3;
    this.backoff = options.backoff ?? { minDelay: 1000, maxDelay: 30_000 };
    this.createdId = options.createdId ?? defaultCreatedId;
    this.ready = this.reload();
    this.unwatch = client.on('state', ({ state }) => {
      if (state === 'connected') this.kick();
    });
    const shared = options.shared === true ? {} : options.shared;
    const locks = shared?.locks ?? (globalThis as { navigator?: { locks?: LockManagerLike } }).navigator?.locks;
    const Channel = shared?.broadcastChannel ?? (globalThis as { BroadcastChannel?: new (name: string) => BroadcastChannelLike }).BroadcastChannel;
    this.draining = shared === undefined || locks === undefined || Channel === undefined;
    if (!this.draining && shared !== undefined && locks !== undefined && Channel !== undefined) {
      const name = `courtside-queue:${shared.name ?? 'courtside'}`;
      this.bus = new Channel(name);
      this.bus.onmessage = (event) => this.heard(event.data as QueueMessage);
      void locks.request(name, async () => {
        if (this.closed) return;
        // This tab sends the operations now: from what the store holds, which other tabs fed.
        this.draining = true;
        await this.reload();
        this.kick();
        await new Promise<void>((release) => (this.releaseDrain = release));
      });
    }
    void this.ready.then(() => this.kick());
  }

  /** Operations waiting to run, in order. */
  get pending(): readonly Operation[] {
    return this.queued;
  }

  /** Operations that failed `maxAttempts` times, waiting for the app to retry or discard them. */
  get failed(): readonly Operation[] {
    return this.failedList;
  }

  /** The server's id for a temporary one, once the operation creating it was applied. */
  idFor(tempId: string): string | undefined {
    return this.ids.get(tempId);
  }

  /** Resolves once the kept operations are loaded. */
  loaded(): Promise<void> {
    return this.ready;
  }

  /**
   * Adds an operation (persisted before this resolves its first step); the promise resolves
   * with its fate — in this page's life. After a reload, fates arrive as `fate` events.
   */
  async enqueue(name: string, args: unknown, options: { tempId?: string } = {}): Promise<FateEvent> {
    if (this.executors[name] === undefined) throw new Error(`no executor for operation ${JSON.stringify(name)}`);
    await this.ready;
    // An id the server already replaced is written as the server's at once.
    for (const [tempId, id] of this.ids) args = replaceString(args, tempId, id);
    const operation: Operation = { id: randomId(), name, args, createdAt: Date.now(), sequence: this.nextSequenceNumber(), attempts: 0 };
    if (options.tempId !== undefined) operation.tempId = options.tempId;
    const fate = new Promise<FateEvent>((resolve) => this.waiters.set(operation.id, resolve));
    await this.store.put(operation, 'queued');
    this.queued.push(operation);
    this.changed();
    this.kick();
    return fate;
  }

  /** Moves a failed operation back to the end of the queue with its attempts reset. */
  async retry(id: string): Promise<void> {
    await this.ready;
    const index = this.failedList.findIndex((operation) => operation.id === id);
    const [operation] = index < 0 ? [] : this.failedList.splice(index, 1);
    if (operation === undefined) return;
    operation.attempts = 0;
    operation.sequence = this.nextSequenceNumber();
    await this.store.put(operation, 'queued');
    this.queued.push(operation);
    this.changed();
    this.kick();
  }

  /** Drops a failed operation: its fate is `rejected` with code `discarded`. */
  async discard(id: string): Promise<void> {
    await this.ready;
    const index = this.failedList.findIndex((operation) => operation.id === id);
    const [operation] = index < 0 ? [] : this.failedList.splice(index, 1);
    if (operation === undefined) return;
    await this.store.delete(id);
    this.changed();
    this.settle(operation, { kind: 'rejected', error: { code: 'discarded', message: 'discarded by the app' } });
  }

  /**
   * Increasing within this tab, and across tabs in the order of the clock (operations made in
   * the same microsecond by two tabs have no order between them).
   */
  private nextSequenceNumber(): number {
    this.lastSequence = Math.max(Date.now() * 1000, this.lastSequence + 1);
    return this.lastSequence;
  }

  /** Reads the lists from the store (what other tabs changed), keeping the operation in flight. */
  private async reload(): Promise<void> {
    const { queued, failed } = await this.store.load();
    const inFlight = this.inFlight;
    this.queued = queued.map((operation) => (operation.id === inFlight?.id ? inFlight : operation));
    this.failedList = failed;
    this.lastSequence = Math.max(this.lastSequence, ...queued.map((op) => op.sequence), ...failed.map((op) => op.sequence));
    this.emit('change', undefined);
  }

  /** Writes the server's `id` for `tempId` into every kept operation's arguments. */
  private async replaceId(tempId: string, id: string): Promise<void> {
    this.ids.set(tempId, id);
    for (const [list, operations] of [['queued', this.queued], ['failed', this.failedList]] as const) {
      for (const operation of operations) {
        const args = replaceString(operation.args, tempId, id);
        if (JSON.stringify(args) === JSON.stringify(operation.args)) continue;
        operation.args = args;
        await this.store.put(operation, list);
      }
    }
    this.emit('id', { tempId, id });
  }

  /** The lists changed here: tell this page, and the other tabs. */
  private changed(): void {
    this.emit('change', undefined);
    if (!this.closed) this.bus?.postMessage({ type: 'changed', from: this.tab } satisfies QueueMessage);
  }

  private heard(message: QueueMessage): void {
    if (message.from === this.tab) return;
    if (message.type === 'changed') {
      void this.reload().then(() => this.kick());
    } else {
      this.emit('fate', message.event);
      this.waiters.get(message.event.operation.id)?.(message.event);
      this.waiters.delete(message.event.operation.id);
    }
  }

  /** Stops listening to the client (operations stay kept; another tab sends them now). */
  close(): void {
    this.unwatch();
    clearTimeout(this.retryTimer);
    this.closed = true;
    this.draining = false;
    this.releaseDrain?.();
    this.bus?.close();
  }

  private kick(): void {
    if (!this.draining || this.running || this.retryTimer !== undefined) return;
    void this.run();
  }

  /** Runs queued operations in order while connected; one at a time. */
  private async run(): Promise<void> {
    this.running = true;
    try {
      await this.ready;
      while (this.draining && this.client.state === 'connected') {
        const operation = this.queued[0];
        if (operation === undefined) return;
        this.inFlight = operation;
        const executor = this.executors[operation.name];
        let fate: Fate | undefined;
        if (executor === undefined) {
          fate = { kind: 'rejected', error: { code: 'unknown_operation', message: `no executor for ${operation.name}` } };
        } else {
          try {
            fate = await executor(operation, this.client);
            // Closed meanwhile: the tab now sending owns this operation and its fate.
            if (this.closed) return;
          } catch (error) {
            if (this.closed) return;
            // The app disconnected the client: not the operation's failure; it waits for a connect.
            if (error instanceof CourtsideError && error.code === 'disconnected') return;
            if (error instanceof CourtsideError && !error.temporary) {
              fate = { kind: 'rejected', error: { code: error.code, message: error.message } };
            } else if (await this.attemptFailed(operation, error)) {
              return;
            } else {
              continue;
            }
          }
        }
        this.queued = this.queued.filter((queued) => queued.id !== operation.id);
        await this.store.delete(operation.id);
        if (operation.tempId !== undefined && (fate.kind === 'applied' || fate.kind === 'merged')) {
          const id = this.createdId(operation, fate.result);
          if (id !== undefined) await this.replaceId(operation.tempId, id);
        }
        this.changed();
        this.settle(operation, fate);
      }
    } finally {
      this.inFlight = undefined;
      this.running = false;
    }
  }

  /**
   * Counts a failed attempt: the operation moves to the failed list after `maxAttempts`
   * (`false`: go on with the next one), else the queue waits a backoff delay (`true`).
   */
  private async attemptFailed(operation: Operation, error: unknown): Promise<boolean> {
    operation.attempts += 1;
    operation.lastError =
      error instanceof CourtsideError ? { code: error.code, message: error.message } : { code: 'network', message: error instanceof Error ? error.message : String(error) };
    if (operation.attempts >= this.maxAttempts) {
      this.queued = this.queued.filter((queued) => queued.id !== operation.id);
      this.failedList.push(operation);
      await this.store.put(operation, 'failed');
      this.changed();
      this.emit('failed', operation);
      return false;
    }
    await this.store.put(operation, 'queued');
    this.changed();
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.kick();
    }, backoffDelay(operation.attempts - 1, this.backoff));
    return true;
  }

  private settle(operation: Operation, fate: Fate): void {
    const event = { operation, fate };
    if (!this.closed) this.bus?.postMessage({ type: 'fate', from: this.tab, event } satisfies QueueMessage);
    this.emit('fate', event);
    this.waiters.get(operation.id)?.(event);
    this.waiters.delete(operation.id);
  }
}
