// From per-run measurements to what the report shows: each figure and
// ratio as median, min and max over the runs, and each of the issue's
// targets met or missed by the median. Ratios are taken within a run
// (annal and its baseline measured minutes apart at most, in the same
// browser) and then summarized, rather than dividing medians.

import { spread } from "./runs.mjs";

const OPS = { "<": (a, b) => a < b, "<=": (a, b) => a <= b, ">": (a, b) => a > b, ">=": (a, b) => a >= b };

/** `{ figures, ratios, targets }` for `workloads` given `measured[id].runs`; `timed` false in smoke mode. */
export function summarize(workloads, measured, { timed }) {
  const figures = [];
  const ratios = [];
  const targets = [];
  for (const w of workloads) {
    const runs = measured[w.id]?.runs ?? [];
    const byId = {};
    for (const f of w.figures) {
      const values = runs.map((run) => safe(() => f.get(run.m)));
      byId[f.id] = values;
      figures.push({ id: f.id, workload: w.id, label: f.label, unit: f.unit, better: f.better, ...spread(values) });
    }
    for (const q of w.ratios) {
      const values = runs.map((_, i) => ratio(byId[q.num]?.[i], byId[q.den]?.[i]));
      ratios.push({ id: q.id, workload: w.id, label: q.label, num: q.num, den: q.den, ...spread(values) });
    }
    for (const t of w.targets) targets.push(judge(t, w.id, figures, ratios, { timed }));
  }
  return { figures, ratios, targets };
}

function judge(t, workload, figures, ratios, { timed }) {
  const source = ratios.find((r) => r.id === t.on) ?? figures.find((f) => f.id === t.on);
  if (!source) throw new Error(`bench bug: target on unknown figure ${t.on}`);
  const base = { workload, text: t.text, on: t.on, kind: ratios.includes(source) ? "ratio" : "figure", unit: source.unit ?? "×", op: t.op, value: t.value, median: source.median, min: source.min, max: source.max };
  if (!timed) return { ...base, status: "not evaluated", note: "smoke run: correctness only" };
  if (t.needs) {
    const f = figures.find((x) => x.id === t.needs.figure);
    if (!(f?.median >= t.needs.atLeast)) return { ...base, status: "not run", note: `needs ${t.needs.atLeast.toLocaleString("en-US")} events (${t.needs.flag}); measured on ${f?.median?.toLocaleString("en-US") ?? "none"}` };
  }
  if (source.median === null) return { ...base, status: "not run", note: "no measurement" };
  return { ...base, status: OPS[t.op](source.median, t.value) ? "met" : "missed" };
}

function ratio(a, b) {
  return typeof a === "number" && typeof b === "number" && b !== 0 ? Math.round((a / b) * 1000) / 1000 : null;
}

function safe(f) {
  try {
    const v = f();
    return typeof v === "number" && Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}
