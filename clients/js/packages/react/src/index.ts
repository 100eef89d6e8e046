/**
 * `@courtside/react`: a provider and hooks over `@courtside/client` (docs/client.md).
 */

export { CourtsideProvider, useCourtside } from './context.js';
export type { CourtsideProviderProps } from './context.js';
export { useChannel, useConnectionStatus, useKeyedState, useLeaderboard, useMatch, useOfflineQueue, usePresence } from './hooks.js';
export type { KeyedState, LeaderboardState, LeaderboardView, MatchState, OfflineQueueState, PresenceState } from './hooks.js';
export { ChannelStore } from './store.js';
export type { ChannelOptions, ChannelSnapshot, CourtsideClient, StoreOptions } from './store.js';
