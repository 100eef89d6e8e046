/**
 * Errors a call can end with: the server's error codes (docs/protocol.md §7) and the client's
 * own (`timeout`, `connection_lost`, `disconnected`), with which of them are worth retrying.
 */

/** A client-side failure code (docs/client.md §5). */
export type ClientFailure = 'timeout' | 'connection_lost' | 'disconnected';

export class CourtsideError extends Error {
  override readonly name = 'CourtsideError';

  constructor(
    /** The server's error code, or the client's own. */
    readonly code: number | ClientFailure,
    message: string,
  ) {
    super(message);
  }

  /** Whether the same request may succeed later: too many requests, unavailable, a timeout, a lost connection. */
  get temporary(): boolean {
    return this.code === 108 || this.code === 111 || this.code === 'timeout' || this.code === 'connection_lost';
  }
}
