import { describe, expect, it } from 'vitest';

import { MemoryPositionStore } from '../src/positions.js';
import type { Publication } from '../src/protocol.js';
import { Subscription, type ResetEvent } from '../src/subscription.js';

const pub = (offset: number, data: unknown, key?: string, removed?: boolean): Publication => ({
  epoch: 'e1',
  offset,
  time: 0,
  data,
  ...(key === undefined ? {} : { key }),
  ...(removed === undefined ? {} : { removed }),
});

describe('Subscription', () => {
  it('delivers in order once and reports duplicates and gaps', () => {
    const positions = new MemoryPositionStore();
    const subscription = new Subscription('chat:a', {}, positions);
    const seen: number[] = [];
    subscription.on('publication', (p) => seen.push(p.offset));
    subscription.applySubscribed({ epoch: 'e1', offset: 2, recovered: true, publications: [pub(1, 'a'), pub(2, 'b')] }, true);
    expect(subscription.state).toBe('subscribed');
    expect(subscription.admit(pub(2, 'b'))).toBe('duplicate');
    expect(subscription.admit(pub(3, 'c'))).toBe('delivered');
    expect(subscription.admit(pub(5, 'e'))).toBe('gap');
    expect(subscription.admit({ ...pub(4, 'd'), epoch: 'e2' })).toBe('gap');
    expect(seen).toEqual([1, 2, 3]);
    expect(subscription.position).toEqual({ epoch: 'e1', offset: 3 });
  });

  it('keeps the keyed state and replaces it from the snapshot when a resume fails', async () => {
    const positions = new MemoryPositionStore();
    const subscription = new Subscription('board:b', { keyed: true }, positions);
    expect(subscription.subscribeParams()).toEqual({ channel: 'board:b', snapshot: true });
    subscription.applySubscribed({ epoch: 'e1', offset: 3, publications: [], snapshot: [pub(1, 10, 'kim'), pub(3, 7, 'lee')] }, false);
    expect([...subscription.entries]).toEqual([['kim', 10], ['lee', 7]]);
    subscription.admit(pub(4, null, 'kim', true));
    subscription.admit(pub(5, 9, 'ana'));
    expect([...subscription.entries]).toEqual([['lee', 7], ['ana', 9]]);
    expect(subscription.subscribeParams()).toEqual({ channel: 'board:b', since: { epoch: 'e1', offset: 5 }, snapshot: true });

    const resets: ResetEvent[] = [];
    subscription.on('reset', (reset) => resets.push(reset));
    subscription.applySubscribed({ epoch: 'e1', offset: 40, recovered: false, publications: [], snapshot: [pub(39, 1, 'zoe')] }, true);
    expect(resets).toHaveLength(1);
    expect([...(resets[0]?.entries ?? [])]).toEqual([['zoe', 1]]);
    expect(subscription.position).toEqual({ epoch: 'e1', offset: 40 });
    expect(await positions.get('board:b')).toEqual({ epoch: 'e1', offset: 40 });
  });

  it('after a reload resumes a plain channel from its kept position but reloads a keyed one whole', async () => {
    const positions = new MemoryPositionStore();
    await positions.set('chat:a', { epoch: 'e1', offset: 7 });
    await positions.set('board:b', { epoch: 'e1', offset: 7 });
    const plain = new Subscription('chat:a', {}, positions);
    const keyed = new Subscription('board:b', { keyed: true }, positions);
    await plain.load();
    await keyed.load();
    expect(plain.subscribeParams()).toEqual({ channel: 'chat:a', since: { epoch: 'e1', offset: 7 } });
    expect(keyed.subscribeParams()).toEqual({ channel: 'board:b', snapshot: true });
  });

  it('delivers publications of a namespace without history and keeps no position', () => {
    const subscription = new Subscription('ticker:live', {}, new MemoryPositionStore());
    subscription.applySubscribed({ epoch: '', offset: 0, publications: [] }, false);
    expect(subscription.admit({ epoch: '', offset: 0, time: 0, data: 'x' })).toBe('delivered');
    expect(subscription.admit({ epoch: '', offset: 0, time: 0, data: 'x' })).toBe('delivered');
    expect(subscription.subscribeParams()).toEqual({ channel: 'ticker:live' });
  });
});
