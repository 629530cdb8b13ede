// Summaries of timing samples. Every figure the bench reports comes from
// here, so percentiles mean the same thing for every subject.

export const now = () => performance.now();

/** Nearest-rank quantile of an ascending array (q in [0, 1]). */
export function quantile(sorted, q) {
  if (sorted.length === 0) return null;
  const rank = Math.ceil(q * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

/** `{ n, mean, min, p50, p95, p99, max }` of samples in ms. */
export function summarize(samples) {
  const sorted = Float64Array.from(samples).sort();
  const n = sorted.length;
  const mean = n ? sorted.reduce((a, b) => a + b, 0) / n : null;
  return {
    n,
    mean: round(mean),
    min: round(sorted[0] ?? null),
    p50: round(quantile(sorted, 0.5)),
    p95: round(quantile(sorted, 0.95)),
    p99: round(quantile(sorted, 0.99)),
    max: round(sorted[n - 1] ?? null),
  };
}

/** Events per second for `count` events in `ms`. */
export function perSecond(count, ms) {
  return ms > 0 ? Math.round((count * 1000) / ms) : null;
}

/** A throughput measurement: total events, wall time, rate, and the latencies of its steps (batches) if given. */
export function throughput(count, ms, stepSamples) {
  const t = { events: count, ms: round(ms), perSec: perSecond(count, ms) };
  if (stepSamples) t.steps = summarize(stepSamples);
  return t;
}

function round(x) {
  return x === null || x === undefined ? null : Math.round(x * 1000) / 1000;
}

/** Runs `op` on each item in turn: each call's latency, and the throughput over their sum. */
export async function oneAtATime(items, op) {
  const samples = [];
  for (const item of items) {
    const t0 = now();
    await op(item);
    samples.push(now() - t0);
  }
  return { latency: summarize(samples), ...throughput(items.length, samples.reduce((a, b) => a + b, 0)) };
}

/** Runs `op` on `inFlight` items at a time: each call's latency, and the throughput over the wall time. */
export async function manyAtATime(items, inFlight, op) {
  const samples = [];
  const t0 = now();
  for (let i = 0; i < items.length; i += inFlight) {
    await Promise.all(
      items.slice(i, i + inFlight).map(async (item) => {
        const t = now();
        await op(item);
        samples.push(now() - t);
      }),
    );
  }
  return { latency: summarize(samples), ...throughput(items.length, now() - t0) };
}
