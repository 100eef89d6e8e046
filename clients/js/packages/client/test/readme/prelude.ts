/**
 * What the README's snippets take from the app around them (`render`, `showRetryButton`,
 * `myBackend`, `Board`, and the `client` and `queue` of earlier snippets), as globals the README
 * test fills in before running each snippet.
 */

import type { Client, Operation, OperationQueue } from '../../src/index.js';

declare global {
  var client: Client;
  var queue: OperationQueue;
  var myBackend: { courtsideToken(): Promise<string> };
  function render(entries: ReadonlyMap<string, unknown>): void;
  function showRetryButton(operation: Operation): void;
  function Board(props: { state: string; scores: ReadonlyMap<string, unknown>; watching: number | undefined }): null;
}

export {};
