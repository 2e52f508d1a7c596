import { createServer, type IncomingMessage, type OutgoingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What a fake provider answers one request with. */
export interface FakeReply {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

/**
 * The HTTP side of a fake provider on 127.0.0.1: reads each request's whole body, hands it to
 * `handle` and writes the reply, so a fake holds only the provider's own checks and answers.
 */
export abstract class FakeHttpService {
  private server: Server | undefined;
  private address = '';

  /** @param defaultHeaders sent with every reply, under the reply's own headers. */
  protected constructor(private readonly defaultHeaders: Record<string, string> = {}) {}

  /** e.g. http://127.0.0.1:41234 (set once listen() resolves). */
  get url(): string {
    return this.address;
  }

  protected abstract handle(req: IncomingMessage, body: Buffer): FakeReply | Promise<FakeReply>;

  /** The answer when `handle` throws; a fake overrides it with its provider's error shape. */
  protected failed(error: Error): FakeReply {
    return { status: 500, body: error.message };
  }

  protected replyHeaders(reply: FakeReply): OutgoingHttpHeaders {
    return { ...this.defaultHeaders, ...reply.headers };
  }

  /** Listens on a free loopback port; resolves to this fake. */
  protected async listen(): Promise<this> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        void Promise.resolve()
          .then(() => this.handle(req, Buffer.concat(chunks)))
          .catch((error: Error) => this.failed(error))
          .then((reply) => res.writeHead(reply.status, this.replyHeaders(reply)).end(reply.body ?? ''));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.server = server;
    this.address = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return this;
  }

  close(): Promise<void> {
    const server = this.server;
    if (!server) return Promise.resolve();
    // Herald's HTTP agent keeps connections open; close() alone would wait for them to idle out.
    server.closeAllConnections();
    return new Promise((resolve) => server.close(() => resolve()));
  }
}
