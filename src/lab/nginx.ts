// A real nginx (Debian's package) serving in a lab namespace, for the
// app-response experiment: keepalive off, so it answers and closes at once;
// one process (no master), so that the lab's SIGKILL leaves no orphaned worker.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { run, type Host, type Lab } from './lab.js';

export interface Nginx {
  /** nginx's access log so far: the application's own record of requests. */
  accessLog(): string;
}

export const NGINX_BIN = '/usr/sbin/nginx';

export async function startNginx(lab: Lab, host: Host, port: number): Promise<Nginx> {
  const dir = mkdtempSync(path.join(tmpdir(), 'pathtrace-nginx-'));
  lab.onDestroy(() => rmSync(dir, { recursive: true, force: true }));
  const conf = path.join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `
user root;
daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 64; }
http {
  access_log ${dir}/access.log;
  keepalive_timeout 0;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen ${port};
    listen [::]:${port};
    location / { return 200 "hello from nginx\\n"; }
  }
}
`,
  );
  const child = lab.spawn(host.netns, NGINX_BIN, ['-p', dir, '-c', conf]);
  let stderr = '';
  child.stderr!.on('data', (d) => {
    stderr += d;
  });
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null)
      throw new Error(`nginx exited: ${stderr.trim() || readLog(path.join(dir, 'error.log'))}`);
    const listening = run('ip', ['netns', 'exec', host.netns, 'ss', '-Hltn', `sport = :${port}`]);
    if (listening.trim()) return { accessLog: () => readLog(path.join(dir, 'access.log')) };
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nginx did not listen on port ${port}: ${stderr.trim()}`);
}

function readLog(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
