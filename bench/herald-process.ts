/**
 * One Herald process under test: `node herald-process.js <config.yaml> <role>`. Reports when it is
 * up (with the CPU time starting took), answers "cpu" with its CPU time so far, and on "stop"
 * closes gracefully and reports its peak resident memory.
 */
import { loadConfig } from '../src/config/load.js';
import { startHerald, type Role } from '../src/service.js';
import { answer } from './ipc.js';

const cpuMs = () => {
  const cpu = process.cpuUsage();
  return (cpu.user + cpu.system) / 1000;
};

const [configFile, role] = process.argv.slice(2) as [string, Role];
// env: {} so variables such as DATABASE_URL in the benchmark's environment change nothing here.
const herald = await startHerald({ config: loadConfig({ file: configFile, env: {} }), role });
process.send!({ type: 'ready', url: herald.url, cpuMs: cpuMs() });

answer(async (message) => {
  if (message.type === 'cpu') return { cpuMs: cpuMs() };
  if (message.type !== 'stop') throw new Error(`unknown question ${message.type}`);
  await herald.close();
  // The reply goes out before the channel closes; closing it ends the process.
  setImmediate(() => process.disconnect());
  return { maxRssKb: process.resourceUsage().maxRSS };
});
process.on('disconnect', () => process.exit(0));
