/**
 * The cache outside React that every hook reads (as TanStack Query keeps its cache): one
 * subscription per channel however many components ask for it, counted, and ended a while
 * after the last one lets go (`gcTime`), so a component that remounts does not resubscribe. Each
 * channel's state is one immutable snapshot, replaced on every change, which is what
 * `useSyncExternalStore` needs.
 */

import type { Client, Publication, StateEvent, Subscription, SubscriptionState } from '@courtside/client';

/** What the hooks use of a client: a `Client`, or a `SharedClient` (one connection per browser). */
export type CourtsideClient = Pick<Client, 'state' | 'subscribe' | 'unsubscribe' | 'history' | 'presenceStats'> & {
  on(name: 'state', listener: (event: StateEvent) => void): () => void;
};

/** What a hook sees of one channel. */
export interface ChannelSnapshot {
  status: SubscriptionState;
  /** Why the subscription ended, when the server refused it. */
  error: { code: number; reason: string } | undefined;
  /** The newest publication delivered. */
  latest: Publication | undefined;
  /** The publications delivered since the channel was first asked for (the newest `keep`). */
  publications: readonly Publication[];
  /** A keyed channel's state: key → the latest data. */
  entries: ReadonlyMap<string, unknown>;
  /** Times the state was replaced by a failed resume (`reset`). */
  resets: number;
}

const EMPTY: ReadonlyMap<string, unknown> = new Map();

export const INITIAL_SNAPSHOT: ChannelSnapshot = { status: 'subscribing', error: undefined, latest: undefined, publications: [], entries: EMPTY, resets: 0 };

export interface ChannelOptions {
  keyed?: boolean;
}

class Entry {
  refs = 0;
  snapshot: ChannelSnapshot = INITIAL_SNAPSHOT;
  gcTimer: ReturnType<typeof setTimeout> | undefined;
  readonly listeners = new Set<() => void>();
  private readonly unlisten: Array<() => void>;

  constructor(
    readonly subscription: Subscription,
    keep: number,
  ) {
    const update = (change: Partial<ChannelSnapshot>) => {
      this.snapshot = { ...this.snapshot, ...change };
      for (const listener of [...this.listeners]) listener();
    };
    this.snapshot = { ...INITIAL_SNAPSHOT, status: subscription.state, entries: new Map(subscription.entries) };
    this.unlisten = [
      subscription.on('state', ({ state, code, reason }) => update({ status: state, error: state === 'unsubscribed' && code >= 100 ? { code, reason } : undefined })),
      subscription.on('publication', (publication) => update({ latest: publication, publications: [...this.snapshot.publications, publication].slice(-keep) })),
      subscription.on('change', (entries) => update({ entries: new Map(entries) })),
      subscription.on('reset', ({ entries }) => update({ entries: new Map(entries ?? EMPTY), resets: this.snapshot.resets + 1 })),
    ];
  }

  dispose(): void {
    for (const unlisten of this.unlisten) unlisten();
  }
}

export interface StoreOptions {
  /** Milliseconds a channel no component uses stays subscribed. Default 5000. */
  gcTime?: number;
  /** Publications kept per channel for `useChannel`. Default 100. */
  keep?: number;
}

export class ChannelStore {
  private readonly entries = new Map<string, Entry>();
  private readonly gcTime: number;
  private readonly keep: number;

  constructor(
    readonly client: CourtsideClient,
    options: StoreOptions = {},
  ) {
    this.gcTime = options.gcTime ?? 5000;
    this.keep = options.keep ?? 100;
  }

  /** The channel's snapshot, or the initial one when no component follows it yet. */
  peek(channel: string): ChannelSnapshot {
    return this.entries.get(channel)?.snapshot ?? INITIAL_SNAPSHOT;
  }

  /** Follows `channel` for one component; the returned function lets go. */
  follow(channel: string, options: ChannelOptions, onChange: () => void): () => void {
    let entry = this.entries.get(channel);
    if (entry === undefined) {
      entry = new Entry(this.client.subscribe(channel, options.keyed === true ? { keyed: true } : {}), this.keep);
      this.entries.set(channel, entry);
    }
    const followed = entry;
    clearTimeout(followed.gcTimer);
    followed.refs += 1;
    followed.listeners.add(onChange);
    // The subscription may have moved on before this component arrived.
    onChange();
    return () => {
      followed.listeners.delete(onChange);
      followed.refs -= 1;
      if (followed.refs > 0) return;
      followed.gcTimer = setTimeout(() => {
        if (followed.refs > 0 || this.entries.get(channel) !== followed) return;
        this.entries.delete(channel);
        followed.dispose();
        this.client.unsubscribe(channel);
      }, this.gcTime);
    };
  }
}
