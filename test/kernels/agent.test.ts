// The agent on every kernel of the matrix (test/kernels/matrix.ts runs this file inside VMs of Debian's kernels,
// `npm test` on this machine's): it loads, counts a DROP rule's drops in a namespace of the test, and names their
// rule by its counter, and so its hook, on every kernel (where the kernel has netfilter BPF programs, 6.4+, the
// agent's own hook program tells the hook too).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Lab } from '../../src/lab/lab.js';
import { native } from '../../src/trace/native.js';
import { addDropRule, assertAgentGone, PORT, RULE, ruleCount, startAgent, waitFor } from '../helpers/agent.js';
import { needsRoot } from '../helpers/pathtrace.js';

/** The labels and value of each drop series of a namespace in an exposition. */
function seriesOf(text: string, netns: string): { labels: Record<string, string>; value: number }[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith(`pathtrace_drops_total{netns="${netns}"`))
    .map((l) => {
      const [, body, value] = /^pathtrace_drops_total\{(.*)\} (\S+)$/.exec(l)!;
      return {
        labels: Object.fromEntries([...body!.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]])),
        value: Number(value),
      };
    });
}

test("agent: a DROP rule's drops counted in its namespace, named by the rule and its hook", async (t) => {
  if (!needsRoot(t)) return;
  const lab = new Lab();
  const agent = await startAgent();
  t.after(() => {
    if (agent.child.exitCode === null) agent.child.kill('SIGKILL');
    lab.destroy();
  });
  const srv = lab.server.netns;
  addDropRule(lab);
  await Promise.all([1, 2].map(() => lab.connect('tcp', lab.server.v4, PORT, 500)));
  const dropped = ruleCount(lab, srv);
  const n = native();
  const links = n.kernelFeatures().netfilterLinks;
  const reasons = Object.keys(n.kernelEnum('skb_drop_reason')).length > 0;
  const netfilter = await waitFor(
    `${dropped} netfilter drops of ${srv}`,
    async () => {
      const s = seriesOf(await agent.metrics(), srv).filter((x) => x.labels.stage === 'netfilter');
      return s.reduce((a, x) => a + x.value, 0) === dropped ? s : undefined;
    },
    20_000,
  ).catch(async (e: Error) => assert.fail(`${e.message}: ${await agent.metrics()}; ${agent.output()}`));
  for (const { labels } of netfilter) {
    assert.deepEqual(
      [labels.device, labels.protocol, labels.reason],
      ['eth0', 'tcp', reasons ? 'NETFILTER_DROP' : ''],
      JSON.stringify(labels),
    );
    // Named by the rule's counter, its hook that of the rule's chain; a drop between a counter's reading and the
    // kernel's may stay unnamed, at its hook where the kernel's hook program saw it (6.4+).
    if (labels.rule)
      assert.deepEqual([labels.hook, labels.table, labels.chain, labels.rule], ['LOCAL_IN', 'filter', 'INPUT', RULE]);
    else assert.ok(labels.hook === '' || (links && labels.hook === 'LOCAL_IN'), JSON.stringify(labels));
  }
  assert.ok(
    netfilter.some((x) => x.labels.rule === RULE),
    JSON.stringify(netfilter),
  );
  agent.child.kill('SIGTERM');
  assert.equal(await agent.exited, 0, agent.output());
  await assertAgentGone();
});
