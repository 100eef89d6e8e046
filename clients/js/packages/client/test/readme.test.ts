/**
 * clients/js/README.md's snippets: every one type-checks (with the app's own code they mention
 * declared in `readme/prelude.ts`), and every one runs, in order, against a real server, with the
 * README's address replaced by the test server's (the React one builds its element tree).
 */

import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

import 'fake-indexeddb/auto'; // the browser snippets' IndexedDB, in Node
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';

import { Client, OperationQueue, type ClientOptions } from '../src/index.js';
import { courtsideBinary, TestServer } from './server.js';

const README = resolve(import.meta.dirname, '../../../README.md');
const README_URL = 'http://127.0.0.1:8080';
const generated = resolve(import.meta.dirname, 'readme/generated');

interface Snippet {
  language: 'ts' | 'tsx';
  code: string;
  line: number;
}

function snippets(): Snippet[] {
  const found: Snippet[] = [];
  const lines = readFileSync(README, 'utf8').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const fence = /^```(ts|tsx)$/.exec(lines[i] ?? '');
    if (fence === null) continue;
    const start = i + 1;
    while (i + 1 < lines.length && lines[i + 1] !== '```') i++;
    found.push({ language: fence[1] as 'ts' | 'tsx', code: lines.slice(start, i + 1).join('\n'), line: start });
    i++;
  }
  return found;
}

/** Writes each snippet as a module (the prelude first), with `url` for the README's address. */
function write(url: string): string[] {
  rmSync(generated, { recursive: true, force: true });
  mkdirSync(generated, { recursive: true });
  return snippets().map((snippet, index) => {
    const file = join(generated, `snippet-${index + 1}.${snippet.language}`);
    writeFileSync(file, `import '../prelude.js';\n// README.md line ${snippet.line}\n${snippet.code.replaceAll(README_URL, url)}\nexport {};\n`);
    return file;
  });
}

describe('clients/js/README.md', () => {
  it('has snippets, and every one type-checks', () => {
    const files = write(README_URL);
    expect(files.length).toBeGreaterThanOrEqual(4);
    const program = ts.createProgram([resolve(import.meta.dirname, 'readme/prelude.ts'), ...files], {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      customConditions: ['source'],
      jsx: ts.JsxEmit.ReactJSX,
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
      types: ['node'],
    });
    const problems = ts.getPreEmitDiagnostics(program).map((diagnostic) => {
      const where = diagnostic.file === undefined ? '' : `${diagnostic.file.fileName}:${diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start ?? 0).line + 1}: `;
      return `${where}${ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')}`;
    });
    expect(problems).toEqual([]);
  });

  const binary = courtsideBinary();
  describe.skipIf(binary === undefined)('its snippets, run against a server', () => {
    let server: TestServer;
    const rendered: Array<ReadonlyMap<string, unknown>> = [];

    beforeAll(async () => {
      server = await TestServer.start(binary ?? '');
      await server.api('POST', '/api/users', { username: 'kim', password: 'correct horse battery', roles: ['scorekeeper'] });
      (globalThis as { WebSocket?: unknown }).WebSocket = WebSocket;
      globalThis.myBackend = { courtsideToken: async () => server.token('kim', 3600) };
      globalThis.render = (entries) => rendered.push(entries);
      globalThis.showRetryButton = () => {};
      globalThis.client = new Client({ url: server.url, WebSocket: WebSocket as unknown as NonNullable<ClientOptions['WebSocket']>, watchNetwork: false });
      globalThis.client.connect();
      globalThis.queue = new OperationQueue(globalThis.client);
    });

    afterAll(async () => {
      globalThis.queue.close();
      globalThis.client.close();
      await (server as TestServer | undefined)?.stop();
    });

    it('runs each one to its end', async () => {
      const files = write(server.url);
      for (const file of files) {
        await import(pathToFileURL(file).href);
      }
      expect(rendered.length).toBeGreaterThan(0);
    }, 30_000);
  });
});
