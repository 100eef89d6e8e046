/**
 * Optimistic state (docs/client.md §4): what the app shows is the server's state with every
 * operation not yet confirmed applied on top, in order, by the app's own `apply`. A confirmed
 * operation shows in the server's state; a rejected one, or one that met a conflict, drops out
 * of the queue and so out of the view — the rollback — and is reported as `rollback`. Operations
 * on the failed list stay applied until the app retries (they go on) or discards them (they roll
 * back).
 */

import { Emitter } from './emitter.js';
import type { FateEvent, Operation, OperationQueue } from './queue.js';

export interface OptimisticOptions<State> {
  /** The server's state now, e.g. a keyed subscription's entries. */
  base: () => State;
  /** `state` with one unconfirmed operation applied; must not change `state`. */
  apply: (state: State, operation: Operation) => State;
}

export interface OptimisticEvents<State> extends Record<string, unknown> {
  change: State;
  /** An operation the server refused or could not combine: its effect is gone from `value`. */
  rollback: FateEvent;
}

export class OptimisticState<State> extends Emitter<OptimisticEvents<State>> {
  private current: State;
  private readonly unlisten: Array<() => void>;

  constructor(
    private readonly queue: OperationQueue,
    private readonly options: OptimisticOptions<State>,
  ) {
    super();
    this.current = this.compute();
    this.unlisten = [
      queue.on('change', () => this.refresh()),
      queue.on('fate', (event) => {
        if (event.fate.kind === 'rejected' || event.fate.kind === 'conflict') this.emit('rollback', event);
      }),
    ];
  }

  /** The server's state with the unconfirmed operations applied. */
  get value(): State {
    return this.current;
  }

  /** Computes the view again: call it when the server's state changed. */
  refresh(): void {
    this.current = this.compute();
    this.emit('change', this.current);
  }

  close(): void {
    for (const off of this.unlisten) off();
  }

  private compute(): State {
    return [...this.queue.pending, ...this.queue.failed].reduce(this.options.apply, this.options.base());
  }
}
