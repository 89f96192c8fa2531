// Who listens on a TCP port, as `ss -tlnp` tells it: the namespace's listening sockets (/proc/net/tcp and tcp6,
// state 0A, read inside the namespace) and the processes whose descriptors hold them (/proc/PID/fd links
// "socket:[INODE]": socket inodes are the same seen from any namespace). Read for a listen-queue overflow when
// it is reported, once per port, never per packet.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

export interface Listener {
  /** The listening socket's address as ss prints it: 0.0.0.0:80, [::]:80. */
  address: string;
  /** The processes holding it (several after a fork, or with SO_REUSEPORT); empty when none could be read. */
  processes: { pid: number; comm: string }[];
  /** Connections waiting in its accept queue when pathtrace looked (ss's Recv-Q). */
  queued: number;
}

// The drop a listener is told with: the Drop interface of correlate/journey.ts, widened here.
const TCP_LISTEN = '0A';

/** Read inside the traced namespace. */
export const LISTENER_FILES = ['/proc/thread-self/net/tcp', '/proc/thread-self/net/tcp6'];

/** /proc/net/tcp's address: v4 one 32-bit word, v6 four, each in the host's byte order (little-endian here). */
function procAddress(hex: string): string {
  const bytes = (hex.match(/../g) ?? []).map((b) => parseInt(b, 16));
  const words: number[][] = [];
  for (let i = 0; i < bytes.length; i += 4) words.push(bytes.slice(i, i + 4).reverse());
  const b = words.flat();
  if (b.length === 4) return b.join('.');
  const groups = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  const text = groups.join(':');
  // As ss prints them: an IPv4-mapped address with its IPv4 part dotted, others compressed (URL's canonical form).
  if (text.startsWith('0:0:0:0:0:ffff:')) return `::ffff:${b.slice(12).join('.')}`;
  return new URL(`http://[${text}]/`).hostname.slice(1, -1);
}

/** Listening sockets of /proc/net/tcp or tcp6 text: address, port, inode, accept queue. Pure. */
export function parseListening(text: string): { address: string; port: number; inode: number; queued: number }[] {
  const out = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    const [local, state, queues, inode] = [f[1], f[3], f[4], f[9]];
    if (state !== TCP_LISTEN || !local || !queues || !inode) continue;
    const [addr = '', port = ''] = local.split(':');
    out.push({
      address: procAddress(addr),
      port: parseInt(port, 16),
      inode: Number(inode),
      queued: parseInt(queues.split(':')[1] ?? '0', 16),
    });
  }
  return out;
}

/** Whether a socket bound to `bound` takes a connection to dst: the same address, or a wildcard of its family
 *  (an IPv6 wildcard also takes IPv4, unless IPV6_V6ONLY, which /proc does not show). Pure. */
export function takes(bound: string, dst: string): boolean {
  const v4 = !dst.includes(':');
  return bound === dst || bound === '::' || (v4 ? bound === '0.0.0.0' || bound === `::ffff:${dst}` : false);
}

/** The processes whose descriptors hold these socket inodes, by inode (what ss -p does). */
export function socketHolders(inodes: Set<number>, proc = '/proc'): Map<number, { pid: number; comm: string }[]> {
  const out = new Map<number, { pid: number; comm: string }[]>();
  const list = (dir: string) => {
    try {
      return readdirSync(dir);
    } catch {
      return []; // gone meanwhile, or not ours to read
    }
  };
  for (const pid of list(proc).filter((d) => /^\d+$/.test(d))) {
    for (const fd of list(`${proc}/${pid}/fd`)) {
      let link: string;
      try {
        link = readlinkSync(`${proc}/${pid}/fd/${fd}`);
      } catch {
        continue; // closed meanwhile
      }
      const inode = Number(/^socket:\[(\d+)\]$/.exec(link)?.[1]);
      if (!inodes.has(inode)) continue;
      let comm = '?';
      try {
        comm = readFileSync(`${proc}/${pid}/comm`, 'utf8').trim();
      } catch {
        /* exited meanwhile: its pid still says who */
      }
      const holders = out.get(inode) ?? [];
      if (!holders.some((h) => h.pid === Number(pid))) holders.push({ pid: Number(pid), comm });
      out.set(inode, holders);
    }
  }
  return out;
}

/** The listening sockets that take connections to dst:port, from the namespace's /proc/net/tcp and tcp6 texts,
 *  with their holders. */
export function listenersOf(texts: string[], dst: string, port: number, proc = '/proc'): Listener[] {
  const sockets = texts.flatMap(parseListening).filter((s) => s.port === port && takes(s.address, dst));
  const holders = socketHolders(new Set(sockets.map((s) => s.inode)), proc);
  return sockets.map((s) => ({
    address: s.address.includes(':') ? `[${s.address}]:${s.port}` : `${s.address}:${s.port}`,
    processes: holders.get(s.inode) ?? [],
    queued: s.queued,
  }));
}
