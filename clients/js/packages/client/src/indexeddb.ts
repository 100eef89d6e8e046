/**
 * Browser persistence in IndexedDB: `IndexedDbPositionStore` (subscription positions) and
 * `IndexedDbOperationStore` (the offline operation queue), in one database per app (`name`),
 * so a page reload resumes every subscription and keeps every queued operation.
 */

import type { PositionStore } from './positions.js';
import type { StreamPosition } from './protocol.js';
import type { Operation, OperationStore } from './queue.js';

const VERSION = 1;
const POSITIONS = 'positions';
const OPERATIONS = 'operations';

/** A kept operation and the list it is on. */
interface OperationRow {
  id: string;
  list: 'queued' | 'failed';
  operation: Operation;
}

function request<T>(pending: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    pending.onsuccess = () => resolve(pending.result);
    pending.onerror = () => reject(pending.error ?? new Error('IndexedDB request failed'));
  });
}

function finished(transaction: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    transaction.oncomplete = () => resolve();
    transaction.onerror = () => reject(transaction.error ?? new Error('IndexedDB transaction failed'));
    transaction.onabort = () => reject(transaction.error ?? new Error('IndexedDB transaction aborted'));
  });
}

/** Opens (creating on first use) the client's database. */
function openDatabase(name: string, factory: IDBFactory): Promise<IDBDatabase> {
  const opening = factory.open(name, VERSION);
  opening.onupgradeneeded = () => {
    const database = opening.result;
    if (!database.objectStoreNames.contains(POSITIONS)) database.createObjectStore(POSITIONS);
    if (!database.objectStoreNames.contains(OPERATIONS)) database.createObjectStore(OPERATIONS, { keyPath: 'id' });
  };
  return request(opening);
}

class Database {
  private opened: Promise<IDBDatabase> | undefined;

  constructor(
    private readonly name: string,
    private readonly factory: IDBFactory,
  ) {}

  async run<T>(store: string, mode: IDBTransactionMode, work: (objects: IDBObjectStore) => IDBRequest<T>): Promise<T> {
    this.opened ??= openDatabase(this.name, this.factory);
    const transaction = (await this.opened).transaction(store, mode);
    const result = request(work(transaction.objectStore(store)));
    await finished(transaction);
    return result;
  }
}

function defaultFactory(): IDBFactory {
  const factory = (globalThis as { indexedDB?: IDBFactory }).indexedDB;
  if (factory === undefined) throw new Error('no IndexedDB on this platform');
  return factory;
}

export class IndexedDbPositionStore implements PositionStore {
  private readonly database: Database;

  constructor(name = 'courtside', factory: IDBFactory = defaultFactory()) {
    this.database = new Database(name, factory);
  }

  async get(channel: string): Promise<StreamPosition | undefined> {
    const found = await this.database.run(POSITIONS, 'readonly', (objects) => objects.get(channel) as IDBRequest<StreamPosition | undefined>);
    return found === undefined ? undefined : { epoch: found.epoch, offset: found.offset };
  }

  async set(channel: string, position: StreamPosition): Promise<void> {
    await this.database.run(POSITIONS, 'readwrite', (objects) => objects.put({ epoch: position.epoch, offset: position.offset }, channel));
  }

  async delete(channel: string): Promise<void> {
    await this.database.run(POSITIONS, 'readwrite', (objects) => objects.delete(channel));
  }
}

export class IndexedDbOperationStore implements OperationStore {
  private readonly database: Database;

  constructor(name = 'courtside', factory: IDBFactory = defaultFactory()) {
    this.database = new Database(name, factory);
  }

  async load(): Promise<{ queued: Operation[]; failed: Operation[] }> {
    const rows = await this.database.run(OPERATIONS, 'readonly', (objects) => objects.getAll() as IDBRequest<OperationRow[]>);
    const pick = (list: 'queued' | 'failed') =>
      rows
        .filter((row) => row.list === list)
        .map((row) => row.operation)
        .sort((a, b) => a.sequence - b.sequence);
    return { queued: pick('queued'), failed: pick('failed') };
  }

  async put(operation: Operation, list: 'queued' | 'failed'): Promise<void> {
    const row: OperationRow = { id: operation.id, list, operation };
    await this.database.run(OPERATIONS, 'readwrite', (objects) => objects.put(row));
  }

  async delete(id: string): Promise<void> {
    await this.database.run(OPERATIONS, 'readwrite', (objects) => objects.delete(id));
  }
}
