/**
 * The hooks. Each returns one status object, stable between changes; channels are shared
 * through the provider's cache (one subscription per channel, however many components).
 */

import type { Fate, FateEvent, Operation, Publication, StateEvent, SubscriptionState } from '@courtside/client';
import type { Schemas } from '@courtside/client/api';
import { useCallback, useEffect, useMemo, useState, useSyncExternalStore } from 'react';

import { useCourtside } from './context.js';
import { INITIAL_SNAPSHOT, type ChannelOptions, type ChannelSnapshot } from './store.js';

/** The client's state, re-rendering on every transition. */
export function useConnectionStatus(): StateEvent {
  const { client } = useCourtside();
  const [status, setStatus] = useState<StateEvent>(() => ({ state: client.state, code: 0, reason: '' }));
  useEffect(() => {
    setStatus((current) => (current.state === client.state ? current : { state: client.state, code: 0, reason: '' }));
    return client.on('state', setStatus);
  }, [client]);
  return status;
}

/** A channel's publications and status; `undefined` follows nothing (e.g. while an id loads). */
export function useChannel(channel: string | undefined, options: ChannelOptions = {}): ChannelSnapshot {
  const { store } = useCourtside();
  const keyed = options.keyed === true;
  const subscribe = useCallback((onChange: () => void) => (channel === undefined ? () => {} : store.follow(channel, { keyed }, onChange)), [store, channel, keyed]);
  const snapshot = useCallback(() => (channel === undefined ? INITIAL_SNAPSHOT : store.peek(channel)), [store, channel]);
  return useSyncExternalStore(subscribe, snapshot, snapshot);
}

export interface KeyedState {
  status: SubscriptionState;
  error: ChannelSnapshot['error'];
  /** Key → the latest data. */
  entries: ReadonlyMap<string, unknown>;
  /** Times a failed resume replaced the state from a snapshot. */
  resets: number;
}

/** A keyed channel's state (a scoreboard, a roster), loaded from its snapshot and kept by key. */
export function useKeyedState(channel: string | undefined): KeyedState {
  const { status, error, entries, resets } = useChannel(channel, { keyed: true });
  return useMemo(() => ({ status, error, entries, resets }), [status, error, entries, resets]);
}

export interface PresenceState {
  status: 'pending' | 'success' | 'error';
  /** Connections following the channel ("N watching"), across the cluster. */
  clients: number | undefined;
  /** Distinct signed-in users among them. */
  users: number | undefined;
  error: unknown;
}

/**
 * How many follow `channel` — this page among them: it follows the channel too (sharing the
 * subscription of any component that does) — asked once subscribed, then every `interval` ms
 * (default 10 s).
 */
export function usePresence(channel: string | undefined, interval = 10_000): PresenceState {
  const { client } = useCourtside();
  const subscribed = useChannel(channel).status === 'subscribed';
  const [state, setState] = useState<PresenceState>({ status: 'pending', clients: undefined, users: undefined, error: undefined });
  useEffect(() => {
    if (channel === undefined) return;
    let cancelled = false;
    const load = async () => {
      try {
        const stats = await client.presenceStats(channel);
        if (!cancelled) setState({ status: 'success', clients: stats.clients, users: stats.users, error: undefined });
      } catch (error) {
        if (!cancelled) setState((current) => ({ ...current, status: 'error', error }));
      }
    };
    void load();
    const timer = setInterval(() => void load(), interval);
    return () => {
      cancelled = true;
      clearInterval(timer);
    };
  }, [client, channel, interval, subscribed]);
  return state;
}

export interface MatchState {
  status: SubscriptionState;
  error: ChannelSnapshot['error'];
  /** The current score (`undefined` before the first point). */
  score: Schemas['ScoreRecord'] | undefined;
  /** Who keeps the score (`null`: nobody holds the claim). */
  claim: Schemas['Claim'] | null | undefined;
  /** The score's changes, oldest first: the channel's kept history, then every live change. */
  history: readonly Schemas['ScoreRecord'][];
}

/** One match (`match:{eventId}:{matchId}`): its score, its claim and the score's history. */
export function useMatch(eventId: string | undefined, matchId: string | undefined): MatchState {
  const { client } = useCourtside();
  const channel = eventId === undefined || matchId === undefined ? undefined : `match:${eventId}:${matchId}`;
  const { status, error, entries, publications } = useChannel(channel, { keyed: true });
  const [earlier, setEarlier] = useState<readonly Publication[]>([]);
  useEffect(() => {
    setEarlier([]);
    if (channel === undefined) return;
    let cancelled = false;
    client.history(channel, { limit: 1000 }).then(
      (page) => !cancelled && setEarlier(page.publications),
      () => {},
    );
    return () => {
      cancelled = true;
    };
  }, [client, channel]);
  return useMemo(() => {
    const scoreEvent = entries.get('score') as { score?: Schemas['ScoreRecord'] } | undefined;
    const claimEvent = entries.get('claim') as { type?: string; claim?: Schemas['Claim'] } | undefined;
    const claim = claimEvent === undefined ? undefined : claimEvent.type === 'claim' ? (claimEvent.claim ?? null) : null;
    const byOffset = new Map<number, Schemas['ScoreRecord']>();
    for (const publication of [...earlier, ...publications]) {
      const score = publication.key === 'score' ? (publication.data as { score?: Schemas['ScoreRecord'] }).score : undefined;
      if (score !== undefined) byOffset.set(publication.offset, score);
    }
    const history = [...byOffset.entries()].sort(([a], [b]) => a - b).map(([, score]) => score);
    return { status, error, score: scoreEvent?.score, claim, history };
  }, [status, error, entries, publications, earlier]);
}

/** A board's view as `leaderboard:{board}` publishes it (docs/leaderboards.md, "The top N"). */
export interface LeaderboardView {
  type: 'TOP';
  board: string;
  season: string;
  total: number;
  entries: Array<{ player: string; score: number; rank: number }>;
  leader: string | null;
  newLeader: boolean;
  changes: Array<{ type: 'NEW_LEADER' | 'SCORE_UPDATE' | 'RANK_CHANGE'; player: string; score: number; rank: number; previousScore: number | null; previousRank: number | null }>;
  offset: number;
  time: number;
}

export interface LeaderboardState {
  status: SubscriptionState;
  error: ChannelSnapshot['error'];
  /** The current top N (`undefined` before the board's first score). */
  top: LeaderboardView | undefined;
}

/** A leaderboard's top N, pushed as it changes. */
export function useLeaderboard(board: string | undefined): LeaderboardState {
  const { status, error, entries } = useChannel(board === undefined ? undefined : `leaderboard:${board}`, { keyed: true });
  return useMemo(() => ({ status, error, top: entries.get('top') as LeaderboardView | undefined }), [status, error, entries]);
}

export interface OfflineQueueState {
  pending: readonly Operation[];
  failed: readonly Operation[];
  /** The last fate reported (also of operations queued before a reload). */
  lastFate: FateEvent | undefined;
  enqueue: (name: string, args: unknown) => Promise<{ operation: Operation; fate: Fate }>;
  retry: (id: string) => Promise<void>;
  discard: (id: string) => Promise<void>;
}

/** The provider's offline operation queue: what waits, what failed, and how to act on it. */
export function useOfflineQueue(): OfflineQueueState {
  const { queue } = useCourtside();
  if (queue === undefined) throw new Error('useOfflineQueue needs <CourtsideProvider queue={…}>');
  const [version, setVersion] = useState(0);
  const [lastFate, setLastFate] = useState<FateEvent | undefined>(undefined);
  useEffect(() => {
    const offChange = queue.on('change', () => setVersion((n) => n + 1));
    const offFate = queue.on('fate', setLastFate);
    return () => {
      offChange();
      offFate();
    };
  }, [queue]);
  return useMemo(
    () => ({
      pending: [...queue.pending],
      failed: [...queue.failed],
      lastFate,
      enqueue: (name: string, args: unknown) => queue.enqueue(name, args),
      retry: (id: string) => queue.retry(id),
      discard: (id: string) => queue.discard(id),
    }),
    // `version` changes whenever the queue's lists do.
    [queue, version, lastFate],
  );
}
