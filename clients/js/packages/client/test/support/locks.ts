/**
 * The Web Locks API's exclusive mode in one process, for tests of what tabs coordinate: one
 * holder per name, the next request granted when the holder's callback settles.
 */

import type { LockManagerLike } from '../../src/shared.js';

/** Web Locks' exclusive mode: one holder per name, the next request granted when it lets go. */
export class InProcessLocks implements LockManagerLike {
  private readonly queues = new Map<string, Array<() => void>>();

  request(name: string, callback: (lock: unknown) => Promise<void>): Promise<void> {
    return new Promise((done) => {
      const run = () => {
        void callback({ name }).finally(() => {
          const queue = this.queues.get(name) ?? [];
          queue.shift();
          queue[0]?.();
          done();
        });
      };
      const queue = this.queues.get(name) ?? [];
      this.queues.set(name, queue);
      queue.push(run);
      if (queue.length === 1) run();
    });
  }
}
