// A tiny client or server for lab namespaces, run as its own process inside
// one (`ip netns exec NS node peer.js ...`). Prints one JSON line with what
// happened, so that tests and the demo can report the application's view.
//   listen tcp|udp PORT            serve: TCP writes "hello\n" and closes; UDP echoes
//   connect tcp HOST PORT MS       one TCP connection, give up after MS
//   send udp HOST PORT MS          one datagram, wait MS for the echo
import dgram from 'node:dgram';
import net from 'node:net';

function report(o: object): void {
  process.stdout.write(JSON.stringify(o) + '\n');
}

function listen(proto: string, port: number): void {
  const host = '::'; // dual-stack: IPv4 and IPv6
  if (proto === 'tcp') {
    const server = net.createServer((s) => {
      s.on('error', () => {});
      s.end('hello\n');
    });
    server.listen({ port, host, backlog: 16 }, () => report({ listening: port }));
  } else {
    const sock = dgram.createSocket({ type: 'udp6', ipv6Only: false });
    sock.on('message', (msg, from) => sock.send(msg, from.port, from.address));
    sock.bind(port, host, () => report({ listening: port }));
  }
}

function connect(host: string, port: number, ms: number): void {
  const started = Date.now();
  const s = net.connect({ host, port });
  const done = (o: object) => {
    clearTimeout(timer);
    s.destroy();
    report({ ...o, ms: Date.now() - started });
  };
  const timer = setTimeout(() => done({ ok: false, error: 'timeout' }), ms);
  let data = '';
  s.on('data', (d) => { data += d; });
  s.on('end', () => done({ ok: true, data }));
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
  sock.send('ping\n', port, host);
}

const [mode, proto, a, b, c] = process.argv.slice(2);
if (mode === 'listen') listen(proto, Number(a));
else if (mode === 'connect' && proto === 'tcp') connect(a, Number(b), Number(c));
else if (mode === 'send' && proto === 'udp') send(a, Number(b), Number(c));
else {
  process.stderr.write('usage: peer listen tcp|udp PORT | connect tcp HOST PORT MS | send udp HOST PORT MS\n');
  process.exit(2);
}
