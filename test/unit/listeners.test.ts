// Who listens on a port, as ss -tlnp finds it: /proc/net/tcp{,6} and the descriptors that hold the sockets.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { explainDrop, listenerWords } from '../../src/report/reasons.js';
import { listenersOf, parseListening, takes } from '../../src/trace/listeners.js';

const HEAD = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';
// 0.0.0.0:80 listening with 2 waiting (inode 1001); 198.18.0.2:80 established (not a listener); 127.0.0.1:8080.
const TCP =
  HEAD +
  '   0: 00000000:0050 00000000:0000 0A 00000000:00000002 00:00000000 00000000     0        0 1001 1 0 100 0 0 10 0\n' +
  '   1: 020012C6:0050 010012C6:B5D2 01 00000000:00000000 00:00000000 00000000     0        0 1002 1 0 20 4 30 10 -1\n' +
  '   2: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1003 1 0 100 0 0 10 0\n';
// [::]:80 (inode 2001) and [fd00:198:18::2]:80 (inode 2002).
const TCP6 =
  HEAD +
  '   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000001 00:00000000 00000000     0        0 2001 1 0 100 0 0 10 0\n' +
  '   1: 980100FD000018000000000002000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2002 1 0 100 0 0 10 0\n';

test('/proc/net/tcp and tcp6: listening sockets, their addresses as ss prints them, and their accept queues', () => {
  assert.deepEqual(parseListening(TCP), [
    { address: '0.0.0.0', port: 80, inode: 1001, queued: 2 },
    { address: '127.0.0.1', port: 8080, inode: 1003, queued: 0 },
  ]);
  assert.deepEqual(
    parseListening(TCP6).map((l) => l.address),
    ['::', 'fd00:198:18::2'],
  );
  assert.ok(takes('0.0.0.0', '198.18.0.2') && takes('::', '198.18.0.2') && takes('::', 'fd00:198:18::2'));
  assert.ok(!takes('127.0.0.1', '198.18.0.2') && !takes('0.0.0.0', 'fd00:198:18::2'));
  assert.ok(!takes('fd00:198:18::2', 'fd00:198:18::3'));
});

test('the processes that hold a listening socket, from their descriptors; named in the overflow', () => {
  const proc = mkdtempSync(path.join(tmpdir(), 'pathtrace-proc-'));
  try {
    const task = (pid: number, comm: string, links: string[]) => {
      mkdirSync(path.join(proc, String(pid), 'fd'), { recursive: true });
      writeFileSync(path.join(proc, String(pid), 'comm'), `${comm}\n`);
      links.forEach((l, fd) => symlinkSync(l, path.join(proc, String(pid), 'fd', String(fd))));
    };
    task(100, 'nginx', ['/dev/null', 'socket:[1001]', 'socket:[2001]']);
    task(101, 'nginx', ['socket:[1001]']);
    task(200, 'sshd', ['socket:[9999]']);
    const ls = listenersOf([TCP, TCP6], '198.18.0.2', 80, proc);
    assert.deepEqual(ls, [
      {
        address: '0.0.0.0:80',
        processes: [
          { pid: 100, comm: 'nginx' },
          { pid: 101, comm: 'nginx' },
        ],
        queued: 2,
      },
      { address: '[::]:80', processes: [{ pid: 100, comm: 'nginx' }], queued: 1 },
    ]);
    assert.equal(
      listenerWords(ls, true),
      'nginx[100], nginx[101] on 0.0.0.0:80 (2 waiting to be accepted); nginx[100] on [::]:80 (1 waiting to be accepted)',
    );
    assert.equal(
      explainDrop({
        reason: 'TCP_LISTEN_OVERFLOW',
        location: 'tcp_rcv_state_process',
        layer: 'tcp',
        listening: ls.slice(1),
      }),
      "the listening socket's accept queue was full: nginx[100] on [::]:80 does not accept connections fast enough (listen backlog, net.core.somaxconn)",
    );
    assert.deepEqual(listenersOf([TCP], '198.18.0.2', 443, proc), [], 'nothing listens on 443');
  } finally {
    rmSync(proc, { recursive: true, force: true });
  }
});
