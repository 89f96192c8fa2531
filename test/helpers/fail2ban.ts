// Real fail2ban in a lab namespace: its server with a configuration of its own (a copy of the installed
// /etc/fail2ban, one jail watching a log nobody writes), banning addresses with its own action files. The
// rulesets in test/fixtures/rulesets/fail2ban-* were saved from it.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Lab } from '../../src/lab/lab.js';

/** A jail of fail2ban's jail.conf, on the port the lab's tests use. */
export const JAIL = 'mysqld-auth';

const CONF = '/etc/fail2ban';

/** What this machine lacks to run fail2ban with that action (action.d/NAME.conf), or null. */
export function fail2banMissing(banaction: string): string | null {
  const tools = [['fail2ban-client', 'fail2ban'], ...(banaction.includes('ipset') ? [['ipset', 'ipset']] : [])];
  for (const [tool, pkg] of tools) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `needs ${tool} (Debian's ${pkg} package; scripts/setup.sh installs it)`;
    }
  }
  if (!existsSync(path.join(CONF, 'action.d', `${banaction}.conf`))) return `needs ${CONF}/action.d/${banaction}.conf`;
  return null;
}

/** Starts fail2ban in netns with jail JAIL on port and that banaction; stopped when the lab goes. Returns its
 *  client, run in the namespace (`set JAIL banip ADDR`...). */
export function startFail2ban(lab: Lab, netns: string, banaction: string, port: number): (...args: string[]) => string {
  const dir = mkdtempSync(path.join(tmpdir(), 'pathtrace-f2b-'));
  cpSync(CONF, dir, { recursive: true });
  for (const f of readdirSync(path.join(dir, 'jail.d'))) rmSync(path.join(dir, 'jail.d', f), { recursive: true });
  writeFileSync(
    path.join(dir, 'fail2ban.local'),
    `[Definition]\nlogtarget = ${dir}/fail2ban.log\nsocket = ${dir}/fail2ban.sock\npidfile = ${dir}/fail2ban.pid\ndbfile = :memory:\n`,
  );
  writeFileSync(path.join(dir, 'watched.log'), '');
  writeFileSync(
    path.join(dir, 'jail.local'),
    `[DEFAULT]\nbackend = polling\n[${JAIL}]\nenabled = true\nport = ${port}\nlogpath = ${dir}/watched.log\nbanaction = ${banaction}\n`,
  );
  const client = (...args: string[]) => lab.exec(netns, 'fail2ban-client', ['-c', dir, ...args]);
  lab.onDestroy(() => {
    try {
      client('stop');
    } catch {
      // Its client could not reach it: end the server by its pid, so that it does not outlive the test.
      const pidFile = path.join(dir, 'fail2ban.pid');
      const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : 0;
      if (pid > 0) process.kill(pid, 'SIGTERM');
    }
    rmSync(dir, { recursive: true, force: true });
  });
  client('-x', 'start');
  return client;
}
