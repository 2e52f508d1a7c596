import type { ChildProcess } from 'node:child_process';

/** A question to a child process and the reply with the same id. */
export interface Envelope {
  id: number;
  type: string;
  [key: string]: unknown;
}

let nextId = 1;

/** Sends `{type, ...fields}` to the child and resolves with its reply. */
export function ask<T>(child: ChildProcess, type: string, fields: Record<string, unknown> = {}): Promise<T> {
  const id = nextId++;
  return new Promise<T>((resolve, reject) => {
    const onMessage = (message: Envelope) => {
      if (message.id !== id) return;
      cleanup();
      resolve(message as unknown as T);
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`child exited (${code}) before answering "${type}"`));
    };
    const cleanup = () => {
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.on('exit', onExit);
    child.send({ id, type, ...fields });
  });
}

/** In a child: answers each question with what `handler` returns for it. */
export function answer(handler: (message: Envelope) => Promise<Record<string, unknown>> | Record<string, unknown>): void {
  process.on('message', (message: Envelope) => {
    void Promise.resolve(handler(message)).then(
      (reply) => process.send!({ id: message.id, type: message.type, ...reply }),
      (error: unknown) => process.send!({ id: message.id, type: 'error', error: String(error) }),
    );
  });
}

/** Waits for the first message of `type` the child sends on its own (e.g. "ready"). */
export function once<T>(child: ChildProcess, type: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onMessage = (message: { type?: string }) => {
      if (message.type !== type) return;
      cleanup();
      resolve(message as T);
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`child exited (${code}) before "${type}"`));
    };
    const cleanup = () => {
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}
