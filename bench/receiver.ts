/**
 * The webhook receiver, run as a child process of the benchmark so its work does not share a thread
 * with Herald or the load generator. It answers every POST with 204 at once, and records when each
 * webhook-id first arrived and which notification it belongs to (the sequence number in the URL
 * path, /h/<seq>). Repeats of a webhook-id are counted, not recorded again.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { now } from './clock.js';
import { answer } from './ipc.js';

const firstArrival = new Map<string, number>();
let seqs: number[] = [];
let times: number[] = [];
let requests = 0;

const server = createServer((req, res) => {
  const t = now();
  requests++;
  const id = req.headers['webhook-id'];
  if (typeof id === 'string' && !firstArrival.has(id)) {
    firstArrival.set(id, t);
    seqs.push(Number(req.url!.slice(req.url!.lastIndexOf('/') + 1)));
    times.push(t);
  }
  req.resume();
  req.on('end', () => {
    res.writeHead(204);
    res.end();
  });
});
// Herald keeps its connections to a provider open for 30 s; closing sooner would add reconnects.
server.keepAliveTimeout = 60_000;

answer((message) => {
  switch (message.type) {
    case 'count':
      return { unique: firstArrival.size, requests };
    case 'cpu': {
      const cpu = process.cpuUsage();
      return { cpuMs: (cpu.user + cpu.system) / 1000 };
    }
    case 'arrivals':
      return { seqs, times };
    case 'reset':
      firstArrival.clear();
      seqs = [];
      times = [];
      requests = 0;
      return {};
    default:
      throw new Error(`unknown question ${message.type}`);
  }
});

server.listen(0, '127.0.0.1', () => {
  process.send!({ type: 'ready', port: (server.address() as AddressInfo).port });
});
process.on('disconnect', () => process.exit(0));
