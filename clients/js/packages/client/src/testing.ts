/**
 * `@courtside/client/testing`: a scripted server behind a fake WebSocket, for tests of the client
 * and of apps built on it, without a network. It answers `connect`, hands every other command
 * to the test's `answer` function, and can push publications and drop connections.
 */

import type { WebSocketLike } from './client.js';
import type { Publication } from './protocol.js';

export type Answer = (method: string, params: Record<string, unknown>) => { result?: unknown; error?: { code: number; message: string } } | undefined;

export class FakeServer {
  readonly sockets: FakeSocket[] = [];
  readonly commands: Array<{ method: string; params: Record<string, unknown> }> = [];
  answer: Answer = () => ({ result: {} });
  /** Whether new sockets open (false: they fail as a refused connection does). */
  up = true;

  /** The class to pass as the client's `WebSocket`. */
  get WebSocket(): new (url: string) => WebSocketLike {
    const server = this;
    return class extends FakeSocket {
      constructor(url: string) {
        super(server, url);
        server.sockets.push(this);
      }
    };
  }

  /** Drops every open socket as a network failure does (1006). */
  dropAll(): void {
    for (const socket of this.sockets) socket.drop();
  }

  /** Pushes a publication on `channel` to every open socket. */
  publish(channel: string, publication: Publication): void {
    for (const socket of this.sockets) socket.push(JSON.stringify({ push: { channel, pub: publication } }));
  }
}

export class FakeSocket implements WebSocketLike {
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  private open = false;

  constructor(
    private readonly server: FakeServer,
    readonly url: string,
  ) {
    setTimeout(() => {
      if (server.up) {
        this.open = true;
        this.onopen?.({});
      } else {
        this.onclose?.({ code: 1006, reason: '' });
      }
    });
  }

  send(data: string): void {
    if (!this.open) return;
    const replies: string[] = [];
    for (const line of data.split('\n')) {
      const frame = JSON.parse(line) as Record<string, unknown>;
      const id = frame.id as number;
      const method = Object.keys(frame).find((key) => key !== 'id') ?? '';
      const params = frame[method] as Record<string, unknown>;
      this.server.commands.push({ method, params });
      const answer = method === 'connect' ? { result: { client: '1', user: '', version: '1', ping_interval_secs: 25 } } : this.server.answer(method, params);
      if (answer !== undefined) replies.push(JSON.stringify({ id, ...answer }));
    }
    if (replies.length > 0) setTimeout(() => this.open && this.onmessage?.({ data: replies.join('\n') }));
  }

  close(): void {
    this.open = false;
  }

  /** Delivers one server message, if the socket is open. */
  push(message: string): void {
    setTimeout(() => this.open && this.onmessage?.({ data: message }));
  }

  drop(): void {
    if (!this.open) return;
    this.open = false;
    this.onclose?.({ code: 1006, reason: '' });
  }
}
