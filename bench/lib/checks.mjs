// Correctness checks that hold in every mode: a figure from a run that
// lost, duplicated or misread events is not a figure. The smoke run
// (--smoke) is made of these and nothing else.

export class CheckError extends Error {
  constructor(message) {
    super(`bench check failed: ${message}`);
    this.name = "CheckError";
  }
}

/** Throws CheckError unless `actual` equals `expected`; resolves with a record of the check. */
export function expectEqual(what, actual, expected) {
  const ok = JSON.stringify(actual) === JSON.stringify(expected);
  if (!ok) throw new CheckError(`${what}: got ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`);
  return { what, ok };
}

/** Throws CheckError unless `condition`. */
export function expectTrue(what, condition, detail = "") {
  if (!condition) throw new CheckError(`${what}${detail ? `: ${detail}` : ""}`);
  return { what, ok: true };
}
