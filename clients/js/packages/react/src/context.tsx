/**
 * The provider: the app's `Client` (and, if it queues work offline, its `OperationQueue`) made
 * available to every hook, with the channel cache they share.
 */

import type { OperationQueue } from '@courtside/client';
import { createContext, useContext, useMemo, type ReactNode } from 'react';

import { ChannelStore, type CourtsideClient, type StoreOptions } from './store.js';

interface Courtside {
  client: CourtsideClient;
  queue: OperationQueue | undefined;
  store: ChannelStore;
}

const CourtsideContext = createContext<Courtside | undefined>(undefined);

export interface CourtsideProviderProps extends StoreOptions {
  client: CourtsideClient;
  queue?: OperationQueue;
  children?: ReactNode;
}

export function CourtsideProvider({ client, queue, gcTime, keep, children }: CourtsideProviderProps) {
  const value = useMemo(() => {
    const options: StoreOptions = {};
    if (gcTime !== undefined) options.gcTime = gcTime;
    if (keep !== undefined) options.keep = keep;
    return { client, queue, store: new ChannelStore(client, options) };
  }, [client, queue, gcTime, keep]);
  return <CourtsideContext.Provider value={value}>{children}</CourtsideContext.Provider>;
}

/** The provider's client, queue and cache; throws outside a `CourtsideProvider`. */
export function useCourtside(): Courtside {
  const courtside = useContext(CourtsideContext);
  if (courtside === undefined) throw new Error('a Courtside hook was used outside <CourtsideProvider>');
  return courtside;
}
