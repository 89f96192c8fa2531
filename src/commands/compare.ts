// `pathtrace compare CAPTURE TRACE`: reads the files and prints the comparison.
import { CaptureError, readCapture } from '../capture/read.js';
import { CompareError, loadTrace, openInput, type Progress } from '../capture/trace-file.js';
import { compare, formatComparison, frameTuples, matchableTime, MAX_COMPARED } from '../report/compare.js';

/** The capture, then the packets of the trace near its time, compared; progress hears of long reads. */
export function runCompare(capture: string, trace: string, progress?: Progress): string {
  const inputs: { close(): void }[] = [];
  const input = (path: string) => {
    const i = openInput(path, progress);
    inputs.push(i);
    return i.src;
  };
  try {
    const limit = { max: MAX_COMPARED, beyond: 0 };
    const frames = readCapture(input(capture), capture, limit);
    const t = loadTrace(input(trace), trace, matchableTime(frames), frameTuples(frames));
    const cut = [
      limit.beyond
        ? `compared the first ${MAX_COMPARED} frames of ${capture} (${limit.beyond} more left out; ` +
          `tcpdump -r ${capture} -w part.pcap with a filter or editcap -r cuts it)`
        : '',
      t.beyond
        ? `compared the first ${MAX_COMPARED} packets of ${trace} in the capture's time (${t.beyond} more left out)`
        : '',
    ]
      .filter(Boolean)
      .map((l) => l + '\n')
      .join('');
    return (
      cut +
      formatComparison(
        compare(frames, t.packets, t.filter, { traced: t.traced, flows: t.flows }),
        capture,
        trace,
        t.total,
      )
    );
  } catch (e) {
    if (e instanceof CaptureError) throw new CompareError(e.message);
    throw e;
  } finally {
    for (const i of inputs) i.close();
  }
}
