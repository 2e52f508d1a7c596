/**
 * One Herald process under test: `node herald-process.js <config.yaml> <role>`. Reports when it is
 * up, and on "stop" closes gracefully and reports its peak resident memory and the CPU time it
 * used since it was up.
 */
import { loadConfig } from '../src/config/load.js';
import { startHerald, type Role } from '../src/service.js';
import { now } from './clock.js';
import { answer } from './ipc.js';

const [configFile, role] = process.argv.slice(2) as [string, Role];
const startedAt = now();
// env: {} so variables such as DATABASE_URL in the benchmark's environment change nothing here.
const herald = await startHerald({ config: loadConfig({ file: configFile, env: {} }), role });
process.send!({ type: 'ready', url: herald.url, startedAt, readyAt: now() });
// CPU spent starting (PGlite's initdb takes seconds) is not the work being measured.
const startupCpu = process.cpuUsage();

answer(async (message) => {
  if (message.type !== 'stop') throw new Error(`unknown question ${message.type}`);
  await herald.close();
  const cpu = process.cpuUsage(startupCpu);
  // The reply goes out before the channel closes; closing it ends the process.
  setImmediate(() => process.disconnect());
  return { maxRssKb: process.resourceUsage().maxRSS, cpuMs: (cpu.user + cpu.system) / 1000 };
});
process.on('disconnect', () => process.exit(0));
