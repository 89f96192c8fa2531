// Writes bpf/record.h's definitions into TypeScript: the record's layout (PATHTRACE_RECORD_FIELDS and _UNION, and
// PATHTRACE_BYTES_FIELDS for the packet bytes' header), the
// point table (PATHTRACE_POINTS) and the constants user space uses (PATHTRACE_CONSTANTS). Run by `npm run build:ts`
// before tsc; test/unit/record-layout.test.ts holds what it writes to what the C++ compiler built into the addon.
import { readFileSync, writeFileSync } from 'node:fs';

const OUTPUT = new URL('../src/trace/record.generated.ts', import.meta.url);
const HEADER = new URL('../bpf/record.h', import.meta.url);

// Sizes of the C types record.h uses; each is aligned to its size (x86-64, arm64 and BPF alike).
const TYPE_SIZES = { char: 1, __u8: 1, __u16: 2, __u32: 4, __u64: 8 };

// The header as the preprocessor sees it: continued lines joined, comments gone.
const source = readFileSync(HEADER, 'utf8')
  .replace(/\\\n/g, ' ')
  .replace(/\/\*[\s\S]*?\*\//g, ' ')
  .replace(/\/\/.*/g, '');
const defines = new Map();
for (const [, name, params, body] of source.matchAll(/^[ \t]*#[ \t]*define[ \t]+(\w+)(\([^)]*\))?(.*)$/gm))
  defines.set(name, {
    params: params
      ? params
          .slice(1, -1)
          .split(',')
          .map((p) => p.trim())
      : null,
    body: body.trim(),
  });

/** The entries of an X-macro list: for each use of one of its parameters, that parameter and its arguments. */
function entries(list) {
  const d = defines.get(list);
  if (!d?.params) throw new Error(`bpf/record.h has no X-macro ${list}(…)`);
  const out = [];
  for (const [, macro, args] of d.body.matchAll(/(\w+)\s*\(([^()]*)\)/g)) {
    if (!d.params.includes(macro)) throw new Error(`${list}: ${macro}(…) is none of its parameters (${d.params})`);
    out.push({ macro, args: args.split(',').map((a) => a.trim()) });
  }
  return out;
}

/** The value of an object-like macro of integers: literals, other such macros, + - * / and parentheses. */
function value(name) {
  const d = defines.get(name);
  if (!d || d.params) throw new Error(`bpf/record.h defines no constant ${name}`);
  const expr = d.body
    .replace(/\b(0x[0-9a-f]+|\d+)[ul]*\b/gi, '$1')
    .replace(/\b[A-Za-z_]\w*\b/g, (n) => `(${value(n)})`);
  if (!/^[\s\dxa-fA-F()+\-*/]*$/.test(expr)) throw new Error(`${name}: cannot evaluate ${d.body}`);
  const v = Function(`return (${expr});`)();
  if (!Number.isInteger(v)) throw new Error(`${name}: ${d.body} is not an integer`);
  return v;
}

const count = (c) => (/^\d+$/.test(c) ? Number(c) : value(c));
const field = ({ args: [type, name, n] }, list) => {
  if (!(type in TYPE_SIZES)) throw new Error(`${list}: ${name} has a type the generator does not know: ${type}`);
  return { name, type, count: n === undefined ? 1 : count(n), offset: 0, size: 0 };
};

// The structs: their fields in order, each at its natural alignment; a union's members share one offset.
const roundUp = (n, a) => Math.ceil(n / a) * a;
const list = (name) => entries(name).map((e) => field(e, name));
function lay(fields, at = 0) {
  let end = at;
  for (const f of fields) {
    const a = TYPE_SIZES[f.type];
    f.offset = roundUp(end, a);
    f.size = a * f.count;
    end = f.offset + f.size;
  }
  return { end, align: Math.max(1, ...fields.map((f) => TYPE_SIZES[f.type])) };
}

// struct pathtrace_record: its fields, then the union that ends it.
const fields = list('PATHTRACE_RECORD_FIELDS');
const members = list('PATHTRACE_RECORD_UNION');
const head = lay(fields);
const unionAlign = Math.max(...members.map((m) => TYPE_SIZES[m.type]));
const unionAt = roundUp(head.end, unionAlign);
for (const m of members) Object.assign(m, { offset: unionAt, size: TYPE_SIZES[m.type] * m.count });
const recordSize = roundUp(
  Math.max(head.end, ...members.map((m) => m.offset + m.size)),
  Math.max(head.align, unionAlign),
);
const recordFields = [...fields, ...members];

// struct pathtrace_bytes: its header (its data follows at PT_BYTES_HEADER).
const bytesFields = list('PATHTRACE_BYTES_FIELDS');
lay(bytesFields);

// enum pathtrace_point.
const points = entries('PATHTRACE_POINTS').map(({ args: [key, id, name, group] }) => ({
  key,
  id: Number(id),
  name: JSON.parse(name),
  group: JSON.parse(group),
}));
for (const p of points)
  if (points.find((q) => q.id === p.id) !== p)
    throw new Error(`PATHTRACE_POINTS: ${p.key} and another point share id ${p.id}`);
const groups = [...new Set(points.map((p) => p.group))];

const constants = entries('PATHTRACE_CONSTANTS').map(({ args: [name] }) => ({
  name,
  value: value(name),
  c: defines.get(name).body,
}));

const q = (s) => `'${s}'`;
const text = `// Generated from bpf/record.h by scripts/generate-record-ts.mjs (npm run build:ts); do not edit: change record.h.

/** sizeof(struct pathtrace_record) */
export const RECORD_SIZE = ${recordSize};

/** The fields of struct pathtrace_record in order, the union's members last (they share its bytes). */
export const RECORD_FIELDS = [
${recordFields.map((f) => `  { name: ${q(f.name)}, type: ${q(f.type)}, count: ${f.count}, offset: ${f.offset}, size: ${f.size} },`).join('\n')}
] as const;
export type RecordField = (typeof RECORD_FIELDS)[number]['name'];

/** Each field's offset in the record. */
export const OFFSETS = {
${recordFields.map((f) => `  ${f.name}: ${f.offset},`).join('\n')}
} as const;

/** Each field's offset in struct pathtrace_bytes, the header of a --write packet's bytes. */
export const BYTES_OFFSETS = {
${bytesFields.map((f) => `  ${f.name}: ${f.offset},`).join('\n')}
} as const;

/** enum pathtrace_point: Point.X is PT_POINT_X. */
export const Point = {
${points.map((p) => `  ${p.key}: ${p.id},`).join('\n')}
} as const;
export type PointId = (typeof Point)[keyof typeof Point];

/** Each point: its id, its name in the output (a tracepoint's, for its tracepoint), its group for --points. */
export const POINTS = [
${points.map((p) => `  { key: ${q(p.key)}, id: ${p.id}, name: ${q(p.name)}, group: ${q(p.group)} },`).join('\n')}
] as const;
export const POINT_GROUP_NAMES = [${groups.map(q).join(', ')}] as const;

/** Each point's name by id. */
export const POINT_NAMES: Record<number, string> = {
${points.map((p) => `  ${p.id}: ${q(p.name)},`).join('\n')}
};

// The constants of PATHTRACE_CONSTANTS (bpf/record.h says what each means), without their PT_ prefix.
${constants.map((c) => `export const ${c.name.replace(/^PT_/, '')} = ${c.value};${c.c === String(c.value) ? '' : ` // ${c.c}`}`).join('\n')}
`;

writeFileSync(OUTPUT, text);
