// Repetition: each workload runs `runs` times in the same browser session,
// with its subjects in a rotated order so that none always goes first
// (a warm cache or a background flush would otherwise favour one), and
// every figure is reported as median, min and max over the runs.

/** `list` rotated left by `run`. */
export function rotate(list, run) {
  const k = run % list.length;
  return [...list.slice(k), ...list.slice(0, k)];
}

/** `{ median, min, max, values }` of numbers (nulls left out; all-null gives nulls). */
export function spread(values) {
  const v = values.filter((x) => typeof x === "number" && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return { median: null, min: null, max: null, values };
  const mid = v.length >> 1;
  const median = v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  return { median, min: v[0], max: v.at(-1), values };
}
