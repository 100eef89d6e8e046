/**
 * One suite for every implementation of the persistence seams: `PositionStore` (memory, file,
 * IndexedDB) and `OperationStore` (memory, IndexedDB — fake-indexeddb here; the browser suite
 * runs the real one).
 */

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { IDBFactory } from 'fake-indexeddb';
import { describe, expect, it } from 'vitest';

import { IndexedDbOperationStore, IndexedDbPositionStore } from '../src/indexeddb.js';
import { FilePositionStore } from '../src/node.js';
import { MemoryPositionStore, type PositionStore } from '../src/positions.js';
import { MemoryOperationStore, type Operation, type OperationStore } from '../src/queue.js';

const directory = mkdtempSync(join(tmpdir(), 'courtside-stores-'));
let files = 0;

/** Each maker returns a store and, where it persists, a second store over the same data (a reload). */
const positionStores: Record<string, () => { store: PositionStore; reopen?: () => PositionStore }> = {
  memory: () => ({ store: new MemoryPositionStore() }),
  file: () => {
    const path = join(directory, `positions-${files++}.json`);
    const store = new FilePositionStore(path);
    return { store, reopen: () => new FilePositionStore(path) };
  },
  indexeddb: () => {
    const factory = new IDBFactory();
    return { store: new IndexedDbPositionStore('test', factory), reopen: () => new IndexedDbPositionStore('test', factory) };
  },
};

const operationStores: Record<string, () => { store: OperationStore; reopen?: () => OperationStore }> = {
  memory: () => ({ store: new MemoryOperationStore() }),
  indexeddb: () => {
    const factory = new IDBFactory();
    return { store: new IndexedDbOperationStore('test', factory), reopen: () => new IndexedDbOperationStore('test', factory) };
  },
};

const operation = (sequence: number, id = `op-${sequence}`): Operation => ({ id, name: 'publish', args: { n: sequence }, createdAt: 1000, sequence, attempts: 0 });

describe.each(Object.entries(positionStores))('PositionStore: %s', (_, make) => {
  it('keeps, replaces and forgets positions by channel', async () => {
    const { store, reopen } = make();
    expect(await store.get('chat:a')).toBeUndefined();
    await store.set('chat:a', { epoch: 'e1', offset: 3 });
    await store.set('chat:b', { epoch: 'e1', offset: 9 });
    await store.set('chat:a', { epoch: 'e2', offset: 4 });
    expect(await store.get('chat:a')).toEqual({ epoch: 'e2', offset: 4 });
    await store.delete('chat:b');
    expect(await store.get('chat:b')).toBeUndefined();
    if (reopen !== undefined) {
      if (store instanceof FilePositionStore) await store.flush();
      const reloaded = reopen();
      expect(await reloaded.get('chat:a')).toEqual({ epoch: 'e2', offset: 4 });
      expect(await reloaded.get('chat:b')).toBeUndefined();
    }
  });
});

describe.each(Object.entries(operationStores))('OperationStore: %s', (_, make) => {
  it('keeps operations on their lists in sequence order, also across a reload', async () => {
    const { store, reopen } = make();
    // Same creation time, ids in no particular order: the sequence decides.
    await store.put(operation(3, 'a'), 'queued');
    await store.put(operation(1, 'z'), 'queued');
    await store.put(operation(2, 'm'), 'failed');
    await store.put(operation(4, 'b'), 'queued');
    await store.put({ ...operation(1, 'z'), attempts: 2 }, 'queued');
    await store.delete('b');
    for (const current of [store, reopen?.()]) {
      if (current === undefined) continue;
      const { queued, failed } = await current.load();
      expect(queued.map((op) => [op.id, op.attempts])).toEqual([['z', 2], ['a', 0]]);
      expect(failed.map((op) => op.id)).toEqual(['m']);
      expect(queued[1]).toEqual(operation(3, 'a'));
    }
  });
});
