/**
 * What only Node has: `FilePositionStore`, positions kept in a JSON file so a process that
 * restarts resumes its subscriptions where it left off. Writes are atomic (a temporary file
 * renamed over the old one) and coalesced: at most one write in flight, the latest state last.
 */

import { readFile, rename, writeFile } from 'node:fs/promises';

import type { PositionStore } from './positions.js';
import type { StreamPosition } from './protocol.js';

export class FilePositionStore implements PositionStore {
  private positions: Map<string, StreamPosition> | undefined;
  private writing: Promise<void> = Promise.resolve();
  private dirty = false;

  constructor(private readonly path: string) {}

  private async load(): Promise<Map<string, StreamPosition>> {
    if (this.positions !== undefined) return this.positions;
    let loaded = new Map<string, StreamPosition>();
    try {
      const parsed: unknown = JSON.parse(await readFile(this.path, 'utf8'));
      if (typeof parsed === 'object' && parsed !== null) {
        loaded = new Map(Object.entries(parsed as Record<string, StreamPosition>).filter(([, p]) => typeof p?.epoch === 'string' && Number.isSafeInteger(p.offset)));
      }
    } catch {
      // No file yet (or an unreadable one): start empty.
    }
    this.positions ??= loaded;
    return this.positions;
  }

  async get(channel: string): Promise<StreamPosition | undefined> {
    return (await this.load()).get(channel);
  }

  async set(channel: string, position: StreamPosition): Promise<void> {
    (await this.load()).set(channel, { epoch: position.epoch, offset: position.offset });
    return this.save();
  }

  async delete(channel: string): Promise<void> {
    (await this.load()).delete(channel);
    return this.save();
  }

  /** Resolves once everything set so far is on disk. */
  flush(): Promise<void> {
    return this.writing;
  }

  private save(): Promise<void> {
    if (this.dirty) return this.writing;
    this.dirty = true;
    this.writing = this.writing.then(async () => {
      this.dirty = false;
      const text = JSON.stringify(Object.fromEntries(this.positions ?? []));
      const temporary = `${this.path}.tmp`;
      await writeFile(temporary, text);
      await rename(temporary, this.path);
    });
    return this.writing;
  }
}
