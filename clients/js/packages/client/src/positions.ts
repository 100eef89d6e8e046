/**
 * Where subscriptions keep their positions so a resume after a reload or restart misses
 * nothing (docs/client.md §2): the `PositionStore` seam and its in-memory implementation. A file
 * store for Node is in `node.ts`; browsers get IndexedDB.
 */

import type { StreamPosition } from './protocol.js';

export interface PositionStore {
  get(channel: string): Promise<StreamPosition | undefined>;
  set(channel: string, position: StreamPosition): Promise<void>;
  delete(channel: string): Promise<void>;
}

/** Positions for the life of the process. */
export class MemoryPositionStore implements PositionStore {
  private readonly positions = new Map<string, StreamPosition>();

  async get(channel: string): Promise<StreamPosition | undefined> {
    return this.positions.get(channel);
  }

  async set(channel: string, position: StreamPosition): Promise<void> {
    this.positions.set(channel, { ...position });
  }

  async delete(channel: string): Promise<void> {
    this.positions.delete(channel);
  }
}
