import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseCommandLine, parsePorts, UsageError } from '../../src/commands/options.js';

const trace = (argv: string[]) => {
  const c = parseCommandLine(argv);
  assert.equal(c.kind, 'trace');
  return (c as Extract<typeof c, { kind: 'trace' }>).options;
};

test('ports: repeatable, comma lists and ranges, deduplicated and sorted', () => {
  assert.deepEqual(parsePorts(['3306']), [3306]);
  assert.deepEqual(parsePorts(['443,80', '80']), [80, 443]);
  assert.deepEqual(parsePorts(['8000-8003']), [8000, 8001, 8002, 8003]);
  assert.deepEqual(trace(['-p', '22', '--port', '53']).ports, [22, 53]);
});

test('bad ports are usage errors that say what is expected', () => {
  for (const bad of ['0', '65536', 'http', '-1', '10-5', '', '3306,']) {
    assert.throws(() => parsePorts([bad]), UsageError, bad);
  }
  assert.throws(() => parseCommandLine(['--port', '99999']), /ports go from 1 to 65535/);
});

test('hosts accept IPv4 and IPv6 literals only', () => {
  assert.deepEqual(trace(['--host', '198.18.0.1', '-H', 'fd00:198:18::1']).hosts, ['198.18.0.1', 'fd00:198:18::1']);
  assert.deepEqual(trace(['--host', 'FD00:198:18:0::0001']).hosts, ['fd00:198:18::1'], 'in the form events carry');
  assert.throws(() => parseCommandLine(['--host', '1.2.3']), /bad host '1.2.3'/);
  assert.throws(() => parseCommandLine(['--host', 'example.com']), UsageError);
});

test('protocols default to tcp and udp with a port, everything without', () => {
  assert.deepEqual(trace(['--port', '53']).protos, ['tcp', 'udp']);
  assert.deepEqual(trace([]).protos, ['tcp', 'udp', 'icmp']);
  assert.deepEqual(trace(['--proto', 'all']).protos, ['tcp', 'udp', 'icmp']);
  assert.deepEqual(trace(['--proto', 'udp']).protos, ['udp']);
  assert.throws(() => parseCommandLine(['--proto', 'sctp']), /bad protocol 'sctp'/);
  assert.throws(() => parseCommandLine(['--proto', 'icmp', '--port', '80']), /ICMP has no ports/);
});

test('duration, count, netns and json', () => {
  const o = trace(['--duration', '2.5', '-c', '10', '--netns', 'srv', '--json']);
  assert.equal(o.duration, 2.5);
  assert.equal(o.count, 10);
  assert.deepEqual(o.place, { netns: 'srv' });
  assert.equal(o.json, true);
  assert.throws(() => parseCommandLine(['--count', '1.5']), /positive integer/);
  assert.throws(() => parseCommandLine(['--duration', '-1']), UsageError);
});

test('--netns, --container and --pod: one is where to trace; two in the order given are traced at once', () => {
  assert.deepEqual(trace(['--container', 'db']).place, { container: 'db' });
  assert.deepEqual(trace(['--pod', 'prod/mysql-0']).place, { pod: 'prod/mysql-0' });
  assert.deepEqual(trace(['--container', 'db', '-n', 'cli']).across, [{ container: 'db' }, { netns: 'cli' }]);
  assert.deepEqual(trace(['--pod', 'web', '--netns=b']).across, [{ pod: 'web' }, { netns: 'b' }]);
  assert.deepEqual(trace(['--netns', 'a', '--netns=b']).across, [{ netns: 'a' }, { netns: 'b' }]);
  assert.equal(trace(['--netns', 'a', '--container', 'b']).place, null, 'two: neither alone');
  assert.throws(() => parseCommandLine(['-n', 'a', '--container', 'b', '--pod', 'c']), /at most twice in all/);
  assert.throws(() => parseCommandLine(['--pod', 'a/b', '--pod', 'a/b']), /--pod 'a\/b' twice/);
  for (const bad of ['Prod/x', 'a/b/c', '/x', 'a/', 'under_score'])
    assert.throws(() => parseCommandLine(['--pod', bad]), new RegExp(`bad --pod '${bad}': NAMESPACE/NAME`));
  assert.throws(() => parseCommandLine(['--container', 'db', '--container', 'db']), /--container 'db' twice/);
  assert.throws(() => parseCommandLine(['--container', ' ']), /bad --container ' '/);
});

test('unknown options and arguments are one-line usage errors', () => {
  assert.throws(
    () => parseCommandLine(['--bogus']),
    (e: Error) => e instanceof UsageError && /unknown option '--bogus'/.test(e.message) && !e.message.includes('\n'),
  );
  assert.throws(() => parseCommandLine(['--port']), UsageError);
  assert.throws(() => parseCommandLine(['demo', 'local-in', 'extra']), /unexpected argument 'extra'/);
});

test('the words after the options are a tcpdump expression, joined as tcpdump joins them', () => {
  const c = parseCommandLine(['-q', 'tcp', 'port', '3306', 'and', 'not', 'host', '198.18.0.1']);
  assert.ok(c.kind === 'trace');
  assert.equal(c.options.expression, 'tcp port 3306 and not host 198.18.0.1');
  assert.equal(c.options.quiet, true);
  const one = parseCommandLine(['tcp[tcpflags] & tcp-syn != 0', '--json']);
  assert.ok(one.kind === 'trace' && one.options.expression === 'tcp[tcpflags] & tcp-syn != 0' && one.options.json);
  assert.ok(one.kind === 'trace' && one.options.ports === null, 'no --port: any port beside the expression');
  const none = parseCommandLine(['-p', '80']);
  assert.ok(none.kind === 'trace' && none.options.expression === null);
  assert.throws(() => parseCommandLine(['  ']), /empty filter expression/);
});

test('demo scenarios', () => {
  assert.deepEqual(parseCommandLine(['demo']).kind, 'demo');
  const c = parseCommandLine(['demo', 'local-out', '--json']);
  assert.ok(c.kind === 'demo' && c.scenario === 'local-out' && c.options.json);
  assert.throws(() => parseCommandLine(['demo', 'nope']), /unknown demo scenario 'nope'/);
});

test('--with-tcpdump takes an interface name; not with --json', () => {
  assert.equal(trace(['--with-tcpdump', 'eth0']).withTcpdump, 'eth0');
  assert.equal(trace(['--with-tcpdump', 'any']).withTcpdump, 'any');
  assert.equal(trace([]).withTcpdump, null);
  for (const bad of ['', 'a/b', 'x y', 'sixteen-chars-xx']) {
    assert.throws(() => parseCommandLine(['--with-tcpdump', bad]), /bad interface .* for --with-tcpdump/);
  }
  assert.throws(() => parseCommandLine(['--with-tcpdump', 'eth0', '--json']), /not with --json .*pathtrace compare/);
});

test('negative values are bad values, named as such (not "ambiguous")', () => {
  assert.throws(() => parseCommandLine(['--port', '-1']), /bad port '-1'/);
  assert.throws(() => parseCommandLine(['-p', '-1']), /bad port '-1'/);
  assert.throws(() => parseCommandLine(['--duration', '-1']), /bad --duration '-1': expected a positive number/);
  assert.throws(() => parseCommandLine(['--count', '-3']), /bad --count '-3': expected a positive integer/);
  assert.equal(trace(['--port', '53', '-q']).quiet, true, 'an option after a value is still an option');
});

test('numbers are decimal, and every limit has a ceiling it names', () => {
  for (const bad of ['0x10', '1e3', ' 5', 'Infinity', '']) {
    assert.throws(() => parseCommandLine(['--duration', bad]), /bad --duration .*expected a positive number/, bad);
  }
  assert.throws(() => parseCommandLine(['--duration', '2147484']), /at most 2147483 seconds/);
  assert.equal(trace(['--duration', '2147483']).duration, 2147483);
  assert.throws(() => parseCommandLine(['--count', String(2 ** 32 + 1)]), /bad --count .*at most 4294967296/);
  assert.throws(() => parseCommandLine(['--ring-mib', '1024']), /bad --ring-mib '1024': at most 256/);
  assert.throws(() => parseCommandLine(['--ring-mib', '48']), /power of two up to 256/);
  assert.equal(trace(['--ring-mib', '256']).ringMiB, 256);
  assert.throws(
    () => parseCommandLine(['--write', 'x.pcapng', '--snaplen', '2000']),
    /bad --snaplen '2000': at most 1024 bytes/,
  );
});

test('an empty --write and an address with a zone are refused, not ignored', () => {
  assert.throws(() => parseCommandLine(['--write', '']), /bad --write '': expected a file name/);
  assert.throws(
    () => parseCommandLine(['--host', 'fe80::1%eth0']),
    /bad host 'fe80::1%eth0': packets carry no zone; give 'fe80::1'/,
  );
});
