/** The benchmark's handle on the webhook receiver process (receiver.js). */
import { fork, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { now } from './clock.js';
import { ask, once } from './ipc.js';

export interface Arrivals {
  /** Sequence number and first arrival time (ms, monotonic) of each distinct webhook-id. */
  seqs: number[];
  times: number[];
}

export class Receiver {
  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
  ) {}

  static async start(): Promise<Receiver> {
    const child = fork(new URL('./receiver.js', import.meta.url), [], { stdio: 'inherit' });
    const { port } = await once<{ port: number }>(child, 'ready');
    return new Receiver(child, port);
  }

  /** Base URL of webhook targets; a notification's target is `${hookBase(tag)}/${seq}`. */
  hookBase(tag: string): string {
    return `http://127.0.0.1:${this.port}/h/${tag}`;
  }

  async reset(): Promise<void> {
    await ask(this.child, 'reset');
  }

  count(): Promise<{ unique: number; requests: number }> {
    return ask(this.child, 'count');
  }

  async cpuMs(): Promise<number> {
    return (await ask<{ cpuMs: number }>(this.child, 'cpu')).cpuMs;
  }

  arrivals(): Promise<Arrivals> {
    return ask(this.child, 'arrivals');
  }

  /** Polls until `n` distinct webhooks arrived or `timeoutMs` passed; returns how many did. */
  async waitFor(n: number, timeoutMs: number): Promise<number> {
    const deadline = now() + timeoutMs;
    for (;;) {
      const { unique } = await this.count();
      if (unique >= n || now() > deadline) return unique;
      await sleep(20);
    }
  }

  stop(): void {
    this.child.disconnect();
  }
}
