// The app-response experiment (pathtrace demo app-response) with a real nginx: the request reaches the
// application, the response and FIN die at LOCAL_OUT, the server socket sits
// in FIN_WAIT1 and is aborted, and the client retransmits its request.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { NGINX_BIN, startNginx } from '../../src/lab/nginx.js';
import { needsRoot, runCli, traceLab } from '../helpers/pathtrace.js';

const REQUEST = 'GET / HTTP/1.0\r\nHost: lab\r\n\r\n';

function nginxPresent(t: import('node:test').TestContext): boolean {
  if (existsSync(NGINX_BIN)) return true;
  t.skip(`needs nginx (${NGINX_BIN}; scripts/setup.sh installs it)`);
  return false;
}

test('app-response: nginx read the request; its response and FIN died at LOCAL_OUT; FIN_WAIT1, then aborted', async (t) => {
  if (!needsRoot(t) || !nginxPresent(t)) return;
  let accessLog = () => '';
  await traceLab(
    {
      traced: (lab) => lab.server.netns,
      setup: async (lab) => {
        lab.sysctl(lab.server.netns, 'net.ipv4.tcp_orphan_retries', '1');
        accessLog = (await startNginx(lab, lab.server, 80)).accessLog;
        lab.exec(lab.server.netns, 'iptables', [
          '-I',
          'OUTPUT',
          '-p',
          'tcp',
          '--sport',
          '80',
          '--tcp-flags',
          'SYN',
          'NONE',
          '-j',
          'DROP',
        ]);
      },
      args: ['--port', '80'],
      traffic: (lab) => lab.connect('tcp', lab.server.v4, 80, 4000, lab.client, '--send', REQUEST),
    },
    ({ result, packets, connections, summary }) => {
      assert.equal(result.error, 'timeout', 'the client never got an answer');
      assert.match(accessLog(), /"GET \/ HTTP\/1.0" 200/, 'yet nginx logged the request');

      const requests = packets.filter((p) => p.direction === 'in' && p.len === REQUEST.length);
      const [first] = requests;
      assert.deepEqual([first.fate, first.ending, first.delivery.read.comm], ['delivered', 'read', 'nginx']);
      assert.equal(first.delivery.read.bytes, REQUEST.length);
      assert.ok(requests.length >= 3, 'the client retransmitted its request');
      assert.deepEqual(
        requests.map((p) => p.retransmit),
        requests.map((_, i) => i),
      );

      const responses = packets.filter((p) => p.direction === 'out' && p.len > 0);
      assert.ok(responses.length >= 2, 'the response, and TCP retransmitting it');
      for (const p of responses) {
        assert.deepEqual(
          [p.fate, p.drop.hook, p.drop.reason, p.tcpdump],
          ['dropped', 'LOCAL_OUT', 'NETFILTER_DROP', false],
        );
      }
      assert.ok(
        responses.some((p) => p.tcp_flags.includes('F')),
        'the FIN went the same way',
      );
      assert.ok(responses.some((p) => p.retransmit > 0));

      const [c] = connections;
      assert.equal(connections.length, 1);
      assert.equal(c.process.comm, 'nginx');
      const states: string[] = c.tcp_states;
      assert.ok(states.includes('ESTABLISHED>FIN_WAIT1'), states.join(' '));
      assert.ok(states.includes('FIN_WAIT1>CLOSE'), `aborted: ${states.join(' ')}`);
      assert.match(c.verdict, /request read by nginx\[\d+\]/);
      assert.match(c.verdict, /dropped at LOCAL_OUT, before tcpdump could see them/);
      assert.match(c.verdict, /FIN_WAIT1→CLOSE \(aborted\)/);
      assert.equal(summary.counters.TcpExtTCPAbortOnTimeout, 1);
    },
  );
});

test('pathtrace demo app-response and forward tell their stories', (t) => {
  if (!needsRoot(t) || !nginxPresent(t)) return;
  const app = runCli(['demo', 'app-response']);
  assert.equal(app.code, 0, app.stderr);
  assert.match(app.stdout, /read by nginx\[\d+\] after/);
  assert.match(app.stdout, /out FIN-PSH-ACK|out PSH-ACK/);
  assert.match(app.stdout, /LOCAL_OUT ✗ dropped · tcpdump ✗/);
  assert.match(app.stdout, /FIN_WAIT1→CLOSE \(aborted\)/);
  assert.match(app.stdout, /TcpExtTCPAbortOnTimeout \+1/);
  assert.match(app.stderr, /nginx's access log: .*"GET \/ HTTP\/1.0" 200/);

  const fwd = runCli(['demo', 'forward']);
  assert.equal(fwd.code, 0, fwd.stderr);
  assert.match(fwd.stdout, /fwd SYN .* NAT → 198\.18\.1\.1:\d+ → 198\.18\.2\.2:8080/);
  assert.match(
    fwd.stdout,
    /route: forward → eth-srv ─ FORWARD ✓ ─ POST_ROUTING ✓ ─ tcpdump ✓ ─ tx eth-srv ─ forwarded/,
  );
  assert.match(
    fwd.stdout,
    /fwd SYN-ACK .*\n {2}rx eth-srv ─ tcpdump ✓ ─ PRE_ROUTING ✓ ─ route: forward → eth-cli ─ FORWARD ✗ dropped/,
  );
});
