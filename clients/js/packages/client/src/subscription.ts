/**
 * A subscription: the app's wish to follow one channel, outliving connections (docs/client.md
 * §2). It keeps the channel's position, drops what it already delivered, keeps a keyed
 * channel's state, and turns a failed resume (`recovered: false`) into one `reset` event, so
 * the app never reloads. The client owns the wire; a subscription only decides what a reply or
 * a publication means.
 */

import { Emitter } from './emitter.js';
import type { PositionStore } from './positions.js';
import type { PresenceClient, Publication, StreamPosition, SubscribeResult } from './protocol.js';

export type SubscriptionState = 'unsubscribed' | 'subscribing' | 'subscribed';

/** Client codes of subscription transitions (docs/client.md §2); server codes pass through. */
export const SubscriptionCode = {
  subscribeCalled: 0,
  unsubscribeCalled: 1,
  transportClosed: 2,
  subscribed: 8,
} as const;

export interface SubscriptionStateEvent {
  state: SubscriptionState;
  code: number;
  reason: string;
}

/** What a failed resume left: the keyed state replaced from the snapshot, or nothing to go on. */
export interface ResetEvent {
  /** The keyed state now (keyed subscriptions only). */
  entries?: ReadonlyMap<string, unknown>;
  position: StreamPosition;
}

export interface SubscriptionEvents extends Record<string, unknown> {
  state: SubscriptionStateEvent;
  publication: Publication;
  /** The keyed state after a change. */
  change: ReadonlyMap<string, unknown>;
  reset: ResetEvent;
  join: PresenceClient;
  leave: PresenceClient;
}

export interface SubscriptionOptions {
  /** Keep the channel's keyed state (its namespace must be keyed): loaded from a snapshot, then kept by key. */
  keyed?: boolean;
}

/** The `subscribe` parameters a (re)subscribe sends. */
export interface SubscribeParams {
  channel: string;
  since?: StreamPosition;
  snapshot?: boolean;
}

/** What admitting a live publication found. */
export type Admission = 'delivered' | 'duplicate' | 'gap';

export class Subscription extends Emitter<SubscriptionEvents> {
  /** @internal Subscribe attempts refused for a reason that may pass, since the last success. */
  retries = 0;
  private currentState: SubscriptionState = 'unsubscribed';
  private currentPosition: StreamPosition | undefined;
  /** Whether `entries` reflects the channel up to `currentPosition` (false after a reload). */
  private entriesLoaded = false;
  private readonly keyedEntries = new Map<string, unknown>();

  constructor(
    readonly channel: string,
    readonly options: SubscriptionOptions,
    private readonly positions: PositionStore,
  ) {
    super();
  }

  get state(): SubscriptionState {
    return this.currentState;
  }

  /** The last position delivered to the app. */
  get position(): StreamPosition | undefined {
    return this.currentPosition;
  }

  /** A keyed subscription's state: key → the latest publication's data. */
  get entries(): ReadonlyMap<string, unknown> {
    return this.keyedEntries;
  }

  /** @internal Moves to `state`, telling the app. */
  transition(state: SubscriptionState, code: number, reason: string): void {
    if (this.currentState === state && state !== 'unsubscribed') return;
    this.currentState = state;
    this.emit('state', { state, code, reason });
  }

  /** @internal Reads the kept position once, before the first subscribe. */
  async load(): Promise<void> {
    if (this.currentPosition === undefined) {
      this.currentPosition = await this.positions.get(this.channel);
    }
  }

  /**
   * @internal The parameters of the next subscribe. A keyed subscription resumes only while it
   * holds the state up to its position; otherwise it asks for the whole state again.
   */
  subscribeParams(): SubscribeParams {
    const params: SubscribeParams = { channel: this.channel };
    const canResume = this.currentPosition !== undefined && this.currentPosition.epoch !== '' && (!this.options.keyed || this.entriesLoaded);
    if (canResume && this.currentPosition !== undefined) params.since = this.currentPosition;
    if (this.options.keyed) params.snapshot = true;
    return params;
  }

  /** @internal Applies a subscribe reply: the missed publications, or a reset; then `subscribed`. */
  applySubscribed(result: SubscribeResult, resumed: boolean): void {
    const position = { epoch: result.epoch, offset: result.offset };
    if (result.snapshot !== undefined) {
      this.keyedEntries.clear();
      for (const publication of result.snapshot) {
        if (publication.key !== undefined && publication.removed !== true) this.keyedEntries.set(publication.key, publication.data);
      }
      this.entriesLoaded = true;
    }
    if (resumed && result.recovered === false) {
      this.setPosition(position);
      const reset: ResetEvent = this.options.keyed ? { entries: this.keyedEntries, position } : { position };
      this.emit('reset', reset);
    } else {
      if (result.snapshot !== undefined) this.emit('change', this.keyedEntries);
      // The replay's publications, in order, lead up to the reply's position.
      for (const publication of result.publications) this.deliver(publication);
      this.setPosition(position);
    }
    this.retries = 0;
    this.transition('subscribed', SubscriptionCode.subscribed, 'subscribed');
  }

  /** @internal A live publication: delivered once and in order, or found a duplicate or a gap. */
  admit(publication: Publication): Admission {
    const position = this.currentPosition;
    if (publication.offset === 0 || position === undefined) {
      this.deliver(publication);
      return 'delivered';
    }
    if (publication.epoch === position.epoch && publication.offset <= position.offset) return 'duplicate';
    if (publication.epoch !== position.epoch || publication.offset !== position.offset + 1) return 'gap';
    this.deliver(publication);
    return 'delivered';
  }

  private deliver(publication: Publication): void {
    if (publication.offset !== 0) this.setPosition({ epoch: publication.epoch, offset: publication.offset });
    if (this.options.keyed && publication.key !== undefined) {
      if (publication.removed === true) this.keyedEntries.delete(publication.key);
      else this.keyedEntries.set(publication.key, publication.data);
    }
    this.emit('publication', publication);
    if (this.options.keyed && publication.key !== undefined) this.emit('change', this.keyedEntries);
  }

  private setPosition(position: StreamPosition): void {
    this.currentPosition = position;
    if (position.epoch !== '') void this.positions.set(this.channel, position);
  }

  /** @internal A presence event of the channel. */
  presenceEvent(kind: 'join' | 'leave', client: PresenceClient): void {
    this.emit(kind, client);
  }
}
