/**
 * `@courtside/client`: the Courtside client for browsers and Node 20+ (docs/client.md).
 */

export { Client, ClientCode } from './client.js';
export type { ClientEvents, ClientOptions, ClientState, HistoryOptions, PresenceInfo, PublishOptions, StateEvent, WebSocketConstructor, WebSocketLike } from './client.js';
export { Subscription, SubscriptionCode } from './subscription.js';
export type { ResetEvent, SubscriptionEvents, SubscriptionOptions, SubscriptionState, SubscriptionStateEvent } from './subscription.js';
export { CourtsideError } from './errors.js';
export type { ClientFailure } from './errors.js';
export { backoffDelay, DEFAULT_BACKOFF } from './backoff.js';
export type { BackoffOptions } from './backoff.js';
export { MemoryPositionStore } from './positions.js';
export type { PositionStore } from './positions.js';
export type { ConnectResult, HistoryResult, PresenceClient, PresenceStats, Publication, PublishResult, StreamPosition } from './protocol.js';
export { MemoryOperationStore, OperationQueue, publishExecutor } from './queue.js';
export type { Executor, Fate, FateEvent, Operation, OperationStore, QueueClient, QueueEvents, QueueOptions } from './queue.js';
export { IndexedDbOperationStore, IndexedDbPositionStore } from './indexeddb.js';
export { SharedClient } from './shared.js';
export type { BroadcastChannelLike, LockManagerLike, SharedClientEvents, SharedClientOptions } from './shared.js';
export { OptimisticState } from './optimistic.js';
export type { OptimisticEvents, OptimisticOptions } from './optimistic.js';
