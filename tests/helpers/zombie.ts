// A zombie process for tests (Linux): `sleep 0.5` exits while its parent (sh, exec'd into `sleep 30` by then, so it
// cannot reap it as sh might while still running the script) never reaps it.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { until } from './wait';

const state = (pid: number) => {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return null;
  }
};

/** The zombie's pid, and done() to end it (kills its parent, which lets init reap it). */
export async function makeZombie(): Promise<{ pid: number; done: () => void }> {
  const sh = spawn('sh', ['-c', 'sleep 0.5 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const pid = await new Promise<number>((res) => sh.stdout.once('data', (d) => res(Number(String(d).trim()))));
  await until(() => state(pid) === 'Z', `process ${pid} to become a zombie`, 15_000, 20);
  return { pid, done: () => sh.kill('SIGKILL') };
}
