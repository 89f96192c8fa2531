// Lab hosts in network namespaces of their own: a client and a server joined
// by a veth pair, or with a router between them. Addresses come from
// 198.18.0.0/15 and fd00:198:18::/48; nothing outside the lab's namespaces
// is touched. destroy() removes it all.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

export interface Host {
  netns: string; // name under /run/netns
  ifname: string; // its interface toward the peer
  v4: string;
  v6: string;
}

export interface LabOptions {
  /** Put a router namespace (forwarding on) between client and server. */
  router?: boolean;
  /** A Docker-style host as the router: the server (and a neighbour) are containers on its bridge br0,
   *  which holds the router's address toward them. */
  bridge?: boolean;
}

const PEER = fileURLToPath(new URL('./peer.js', import.meta.url));

export function run(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
}

export class Lab {
  readonly client: Host;
  readonly server: Host;
  readonly router?: { netns: string; toClient: Host; toServer: Host };
  /** bridge: a second container on the bridge, beside the server. */
  readonly neighbour?: Host;
  private readonly namespaces: string[] = [];
  private readonly children: ChildProcess[] = [];
  private readonly cleanups: (() => void)[] = [];
  /** A process.exit() anywhere (a crash handler, a second Ctrl-C) skips the callers' finally blocks: the lab
   *  still goes (an 'exit' listener may only do synchronous work, as destroy() does). */
  private readonly onExit = () => this.destroy();

  constructor(opts: LabOptions = {}) {
    process.on('exit', this.onExit);
    const tag = `pt${randomBytes(3).toString('hex')}`;
    const ns = (role: string) => {
      const name = `${tag}-${role}`;
      run('ip', ['netns', 'add', name]);
      this.namespaces.push(name);
      this.ip(name, 'link', 'set', 'lo', 'up');
      return name;
    };
    try {
      const cli = ns('cli');
      const srv = ns('srv');
      if (!opts.router && !opts.bridge) {
        this.client = { netns: cli, ifname: 'eth0', v4: '198.18.0.1', v6: 'fd00:198:18::1' };
        this.server = { netns: srv, ifname: 'eth0', v4: '198.18.0.2', v6: 'fd00:198:18::2' };
        this.link(this.client, 24, this.server, 64);
      } else {
        const rtr = ns('rtr');
        this.client = { netns: cli, ifname: 'eth0', v4: '198.18.1.1', v6: 'fd00:198:18:1::1' };
        this.server = { netns: srv, ifname: 'eth0', v4: '198.18.2.2', v6: 'fd00:198:18:2::2' };
        const toClient = { netns: rtr, ifname: 'eth-cli', v4: '198.18.1.254', v6: 'fd00:198:18:1::fe' };
        const toServer = {
          netns: rtr,
          ifname: opts.bridge ? 'br0' : 'eth-srv',
          v4: '198.18.2.254',
          v6: 'fd00:198:18:2::fe',
        };
        this.router = { netns: rtr, toClient, toServer };
        this.link(this.client, 24, toClient, 64);
        if (opts.bridge) {
          this.neighbour = { netns: ns('nb'), ifname: 'eth0', v4: '198.18.2.3', v6: 'fd00:198:18:2::3' };
          this.bridge(toServer, [
            [this.server, 'veth-srv'],
            [this.neighbour, 'veth-nb'],
          ]);
        } else {
          this.link(this.server, 24, toServer, 64);
        }
        for (const [host, gw] of [
          [this.client, toClient],
          [this.server, toServer],
        ] as const) {
          this.ip(host.netns, 'route', 'add', 'default', 'via', gw.v4);
          this.ip(host.netns, '-6', 'route', 'add', 'default', 'via', gw.v6);
        }
        this.sysctl(rtr, 'net.ipv4.ip_forward', '1');
        this.sysctl(rtr, 'net.ipv6.conf.all.forwarding', '1');
      }
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  private link(a: Host, len4: number, b: Host, len6: number): void {
    run('ip', ['link', 'add', a.ifname, 'netns', a.netns, 'type', 'veth', 'peer', 'name', b.ifname, 'netns', b.netns]);
    for (const h of [a, b]) {
      this.ip(h.netns, 'addr', 'add', `${h.v4}/${len4}`, 'dev', h.ifname);
      this.ip(h.netns, '-6', 'addr', 'add', `${h.v6}/${len6}`, 'dev', h.ifname, 'nodad');
      this.ip(h.netns, 'link', 'set', h.ifname, 'up');
    }
    // Lab peers know each other's MAC: no ARP or ND delays in the experiments
    // (a test of neighbour resolution uses an address that is not pinned).
    this.pinNeighbour(a, b);
    this.pinNeighbour(b, a);
  }

  /** A bridge on br with an address of its own, and each host on a port of it (a veth pair). */
  private bridge(br: Host, ports: [Host, string][]): void {
    this.ip(br.netns, 'link', 'add', br.ifname, 'type', 'bridge');
    for (const [h, port] of ports) {
      run('ip', ['link', 'add', h.ifname, 'netns', h.netns, 'type', 'veth', 'peer', 'name', port, 'netns', br.netns]);
      this.ip(br.netns, 'link', 'set', port, 'master', br.ifname, 'up');
    }
    for (const h of [br, ...ports.map(([x]) => x)]) {
      this.ip(h.netns, 'addr', 'add', `${h.v4}/24`, 'dev', h.ifname);
      this.ip(h.netns, '-6', 'addr', 'add', `${h.v6}/64`, 'dev', h.ifname, 'nodad');
      this.ip(h.netns, 'link', 'set', h.ifname, 'up');
    }
    // Pinned once the ports are in: a bridge takes its address from them.
    const hosts = [br, ...ports.map(([x]) => x)];
    for (const a of hosts) for (const b of hosts) if (a !== b) this.pinNeighbour(a, b);
  }

  ip(netns: string, ...args: string[]): string {
    return run('ip', ['-n', netns, ...args]);
  }

  /** Runs a command inside a lab namespace (iptables, nft, sysctl...). */
  exec(netns: string, cmd: string, args: string[], input?: string): string {
    return run('ip', ['netns', 'exec', netns, cmd, ...args], input);
  }

  /** A permanent neighbour entry on `on` for `peer`: no ARP/ND is needed to reach it. */
  pinNeighbour(on: Host, peer: Host): void {
    const [link] = JSON.parse(this.ip(peer.netns, '-j', 'link', 'show', peer.ifname)) as { address: string }[];
    if (!link) throw new Error(`ip link show ${peer.ifname} in ${peer.netns}: no such link`);
    for (const addr of [peer.v4, peer.v6]) {
      this.ip(on.netns, 'neigh', 'replace', addr, 'lladdr', link.address, 'dev', on.ifname, 'nud', 'permanent');
    }
  }

  sysctl(netns: string, key: string, value: string): void {
    this.exec(netns, 'sysctl', ['-qw', `${key}=${value}`]);
  }

  /** Starts a long-running command inside a namespace; it is killed by destroy(). */
  spawn(netns: string, cmd: string, args: string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', netns, cmd, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.children.push(child);
    return child;
  }

  /** Runs fn when the lab is destroyed (temporary files, say). */
  onDestroy(fn: () => void): void {
    this.cleanups.push(fn);
  }

  /** Starts a peer process (see peer.ts) in a namespace; resolves with it once it printed its first line. */
  peer(netns: string, args: string[]): Promise<{ child: ChildProcess; first: Record<string, unknown> }> {
    const child = spawn('ip', ['netns', 'exec', netns, process.execPath, PEER, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.children.push(child);
    return new Promise((resolve, reject) => {
      let out = '',
        err = '';
      child.stdout!.on('data', (d) => {
        out += d;
        const nl = out.indexOf('\n');
        if (nl >= 0) resolve({ child, first: JSON.parse(out.slice(0, nl)) });
      });
      child.stderr!.on('data', (d) => {
        err += d;
      });
      child.on('exit', (code) => reject(new Error(`peer ${args.join(' ')} exited (${code}): ${err.trim()}`)));
    });
  }

  async listen(proto: 'tcp' | 'udp', port: number, host: Host = this.server, ...options: string[]): Promise<void> {
    await this.peer(host.netns, ['listen', proto, String(port), ...options]);
  }

  /** The client's view of one connection or of datagrams sent: {ok, error?, data?, ms}. */
  async connect(
    proto: 'tcp' | 'udp',
    addr: string,
    port: number,
    ms: number,
    from: Host = this.client,
    ...options: string[]
  ) {
    const { first } = await this.peer(from.netns, [
      proto === 'tcp' ? 'connect' : 'send',
      proto,
      addr,
      String(port),
      String(ms),
      ...options,
    ]);
    return first as { ok: boolean; error?: string; data?: string; ms: number };
  }

  destroy(): void {
    process.off('exit', this.onExit);
    for (const c of this.children) if (c.exitCode === null) c.kill('SIGKILL');
    for (const fn of this.cleanups.splice(0)) fn();
    for (const ns of this.namespaces.splice(0)) {
      try {
        run('ip', ['netns', 'del', ns]);
      } catch {
        /* already gone */
      }
    }
  }
}
