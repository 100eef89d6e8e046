/**
 * A real `courtside serve` for the integration tests: started on a free port with its own data
 * directory and configuration, restarted on the same port and data, stopped at the end. The
 * binary comes from `COURTSIDE_BIN` (the Rust test that runs these sets it), else the
 * workspace's `target/debug/courtside`.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const API_KEY = 'test-api-key-0123456789';
const JWT_SECRET = 'test-jwt-secret-0123456789';

/** The server binary, or `undefined` when there is none to run. */
export function courtsideBinary(): string | undefined {
  const fromEnv = process.env.COURTSIDE_BIN;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  const built = resolve(import.meta.dirname, '../../../../../target/debug/courtside');
  return existsSync(built) ? built : undefined;
}

async function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => done(port));
    });
  });
}

const CONFIG = `
api_key = "${API_KEY}"
shutdown_timeout_secs = 2

[auth]
jwt_secret = "${JWT_SECRET}"
access_token_ttl_secs = 3

[namespaces.chat]
history_size = 1000
subscribe = ["anonymous"]
publish = ["anonymous"]

[namespaces.board]
keyed = true
history_size = 4
subscribe = ["anonymous"]
publish = ["anonymous"]
`;

export class TestServer {
  private child: ChildProcess | undefined;
  private output = '';

  private constructor(
    private readonly binary: string,
    readonly port: number,
    private readonly dataDir: string,
    private readonly configFile: string,
  ) {}

  /** Starts a server with the tests' configuration, and `extra` TOML after it. */
  static async start(binary: string, extra = ''): Promise<TestServer> {
    const dataDir = mkdtempSync(join(tmpdir(), 'courtside-js-'));
    const configFile = join(dataDir, 'courtside.toml');
    writeFileSync(configFile, `${CONFIG}\n${extra}`);
    const server = new TestServer(binary, await freePort(), dataDir, configFile);
    await server.run();
    return server;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts the process and waits until `/health` answers. */
  async run(): Promise<void> {
    const args = ['serve', '--config', this.configFile, '--listen', `127.0.0.1:${this.port}`, '--data-dir', join(this.dataDir, 'data')];
    // `COURTSIDE_*` variables are configuration to the server: none of the test's reach it.
    const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('COURTSIDE_')));
    const child = spawn(this.binary, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    this.child = child;
    child.stdout?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`courtside exited with ${child.exitCode}:\n${this.output}`);
      try {
        const response = await fetch(`${this.url}/health`);
        if (response.ok) return;
      } catch {
        // Not listening yet.
      }
      await new Promise((wait) => setTimeout(wait, 50));
    }
    throw new Error(`courtside did not come up:\n${this.output}`);
  }

  /** Stops the process (SIGTERM: a graceful shutdown) and waits for it to exit. */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child === undefined || child.exitCode !== null) return;
    await new Promise<void>((done) => {
      child.once('exit', () => done());
      child.kill('SIGTERM');
    });
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.run();
  }

  /** Publishes through the HTTP API with the server key. */
  async publish(channel: string, data: unknown, key?: string): Promise<{ offset: number }> {
    const response = await fetch(`${this.url}/api/publish`, {
      method: 'POST',
      headers: { authorization: `apikey ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify(key === undefined ? { channel, data } : { channel, data, key }),
    });
    if (!response.ok) throw new Error(`publish failed: ${response.status} ${await response.text()}`);
    return (await response.json()) as { offset: number };
  }

  /** A request to the HTTP API with the server key; the status and the JSON answer. */
  async api(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
    const init: RequestInit = { method, headers: { authorization: `apikey ${API_KEY}`, 'content-type': 'application/json' } };
    if (body !== undefined) init.body = JSON.stringify(body);
    const response = await fetch(`${this.url}${path}`, init);
    const text = await response.text();
    return { status: response.status, body: text === '' ? undefined : (JSON.parse(text) as unknown) };
  }

  /** The tournament the sports tests score: user `kim` (a scorekeeper, password `correct horse battery`), event `cup` with match `m1` (red v blue). */
  async seedCup(): Promise<void> {
    const setup: Array<[string, string, unknown]> = [
      ['POST', '/api/users', { username: 'kim', password: 'correct horse battery', roles: ['scorekeeper'] }],
      ['POST', '/api/events', { id: 'cup', name: 'Cup' }],
      ['PUT', '/api/events/cup/divisions/u18', { id: 'u18', name: 'U18' }],
      ['PUT', '/api/events/cup/teams/red', { id: 'red', name: 'Red' }],
      ['PUT', '/api/events/cup/teams/blue', { id: 'blue', name: 'Blue' }],
      ['POST', '/api/events/cup/matches', { id: 'm1', divisionId: 'u18', homeTeamId: 'red', awayTeamId: 'blue' }],
    ];
    for (const [method, path, body] of setup) {
      const { status, body: answer } = await this.api(method, path, body);
      if (status >= 300) throw new Error(`${method} ${path}: ${status} ${JSON.stringify(answer)}`);
    }
  }

  /** An HS256 token the server accepts, for `sub`, living `ttlSecs`. */
  token(sub: string, ttlSecs: number, roles: string[] = []): string {
    const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const body = `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode({ sub, roles, exp: Math.floor(Date.now() / 1000) + ttlSecs })}`;
    return `${body}.${createHmac('sha256', JWT_SECRET).update(body).digest('base64url')}`;
  }
}
