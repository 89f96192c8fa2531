// A tiny client or server for lab namespaces, run as its own process inside
// one (`ip netns exec NS node peer.js ...`). Prints one JSON line with what
// happened, so that tests and the demo can report the application's view.
//   listen tcp|udp PORT [--stall MS] [--rcvbuf BYTES] [--backlog N] [--close]
//       serve: TCP writes "hello\n" and closes; UDP echoes. --stall blocks the
//       process after binding (nothing is read or accepted): full queues.
//       --close: TCP sends nothing: half-closes each connection at once (FIN)
//       and closes it 300 ms later.
//   connect tcp HOST PORT MS [--send TEXT] [--from ADDR] [--after-fin TEXT]
//       one TCP connection (sending TEXT once connected); give up after MS.
//       --after-fin: once the server closed its side (its FIN came), send TEXT
//       to it, after the FIN's ACK went out (the server's socket then FIN_WAIT2)
//       --reset: once the server closed its side, abort with a reset (RST) rather than close with a FIN
//   send udp HOST PORT MS [--count N] [--size BYTES] [--ttl N] [--from ADDR]
//       N datagrams, then wait MS for an echo
import dgram from 'node:dgram';
import net from 'node:net';
import { parseArgs } from 'node:util';

function report(o: object): void {
  process.stdout.write(JSON.stringify(o) + '\n');
}

/** Blocks this process: its sockets are neither read nor accepted meanwhile. */
function stall(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    stall: { type: 'string' },
    rcvbuf: { type: 'string' },
    backlog: { type: 'string' },
    send: { type: 'string' },
    count: { type: 'string' },
    size: { type: 'string' },
    ttl: { type: 'string' },
    from: { type: 'string' },
    close: { type: 'boolean' },
    reset: { type: 'boolean' },
    'after-fin': { type: 'string' },
  },
});

function listen(proto: string, port: number): void {
  const host = '::'; // dual-stack: IPv4 and IPv6
  const bound = () => {
    report({ listening: port });
    if (opt.stall) setImmediate(() => stall(Number(opt.stall)));
  };
  if (proto === 'tcp') {
    const server = net.createServer((s) => {
      s.on('error', () => {});
      if (!opt.close) return s.end('hello\n');
      // Half-close first and close once the peer's ACK of the FIN is in: close() on a FIN_WAIT2 socket hands it
      // to a time-wait socket (or, above 60 s of tcp_fin_timeout, keeps it) every time. Closed at once, the ACK
      // could come while close() holds the socket's lock, and the kernel then keeps the full socket either way.
      s.end();
      setTimeout(() => s.destroy(), 300);
    });
    server.listen({ port, host, backlog: opt.backlog ? Number(opt.backlog) : 16 }, bound);
  } else {
    const sock = dgram.createSocket({
      type: 'udp6',
      ipv6Only: false,
      recvBufferSize: opt.rcvbuf ? Number(opt.rcvbuf) : undefined,
    });
    sock.on('message', (msg, from) => sock.send(msg, from.port, from.address));
    sock.bind(port, host, bound);
  }
}

function connect(host: string, port: number, ms: number): void {
  const started = Date.now();
  // --after-fin writes after the server's FIN: the socket must stay open for writing (half-open).
  const s = net.connect({ host, port, localAddress: opt.from, allowHalfOpen: opt['after-fin'] !== undefined });
  const done = (o: object) => {
    clearTimeout(timer);
    s.destroy();
    report({ ...o, ms: Date.now() - started });
  };
  const timer = setTimeout(() => done({ ok: false, error: 'timeout', data }), ms);
  let data = '';
  s.on('connect', () => {
    if (opt.send) s.write(opt.send);
  });
  s.on('data', (d) => {
    data += d;
  });
  s.on('end', () => {
    if (opt.reset) {
      s.resetAndDestroy();
      return done({ ok: true, data });
    }
    const late = opt['after-fin'];
    if (late === undefined) return done({ ok: true, data });
    // Linux delays the ACK of a FIN by at most 200 ms (TCP_DELACK_MAX), but a loaded VM under TCG runs timers late:
    // written after a second, the data does not carry that ACK (which would abort the server's full socket in
    // tcp_rcv_state_process) and reaches a server socket whose FIN was acknowledged.
    setTimeout(() => s.write(late, () => setTimeout(() => done({ ok: true, data }), 200)), 1000);
  });
  s.on('error', (e: NodeJS.ErrnoException) => done({ ok: false, error: e.code ?? e.message }));
}

function send(host: string, port: number, ms: number): void {
  const started = Date.now();
  const sock = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  const done = (o: object) => {
    clearTimeout(timer);
    sock.close();
    report({ ...o, ms: Date.now() - started });
  };
  const timer = setTimeout(() => done({ ok: false, error: 'timeout' }), ms);
  sock.on('message', (m) => done({ ok: true, data: m.toString() }));
  sock.on('error', (e: NodeJS.ErrnoException) => done({ ok: false, error: e.code ?? e.message }));
  sock.bind({ address: opt.from }, () => {
    if (opt.ttl) sock.setTTL(Number(opt.ttl));
    const payload = Buffer.alloc(opt.size ? Number(opt.size) : 5, 'p');
    for (let i = 0; i < (opt.count ? Number(opt.count) : 1); i++) sock.send(payload, port, host);
  });
}

const [mode, proto, a, b, c] = positionals;
if (mode === 'listen' && proto !== undefined) listen(proto, Number(a));
else if (mode === 'connect' && proto === 'tcp' && a !== undefined) connect(a, Number(b), Number(c));
else if (mode === 'send' && proto === 'udp' && a !== undefined) send(a, Number(b), Number(c));
else {
  process.stderr.write(
    'usage: peer listen tcp|udp PORT [options] | connect tcp HOST PORT MS | send udp HOST PORT MS\n',
  );
  process.exit(2);
}
