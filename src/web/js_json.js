// JavaScript values to JSON text, checked on the way in (js_json.rs).
//
// JSON.stringify would quietly turn NaN into null, drop functions, call
// toJSON on dates and replace lone surrogates, so the hash would no longer
// match what the app passed. This walk refuses all of those with the path
// of the offending value, [path, code, detail], which js_json.rs words.
// Members whose value is undefined are left out, as JSON.stringify does.
//
// What it writes is canonical (RFC 8785): members sorted by UTF-16 code
// units, which is what sort() compares; strings escaped by JSON.stringify,
// which is what JCS prescribes; numbers as Number.prototype.toString
// prints them. Only an integer beyond 2^53 - 1 is written without being
// vouched for, so that Rust refuses it with the number rule.

const OBJECT = Object.prototype;

class Refusal {
  constructor(path, code, detail = "") {
    this.r = [path, code, detail];
  }
}

const member = (path, key) => (path ? path + "." + key : key);

const plainObject = (v) => {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === null || proto === OBJECT;
};

// Well-formed UTF-16: every surrogate in a pair.
function wellFormed(s) {
  if (s.isWellFormed) return s.isWellFormed();
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    if (c > 0xdbff || (s.charCodeAt(i + 1) & 0xfc00) !== 0xdc00) return false;
    i++;
  }
  return true;
}

function constructorName(v) {
  try {
    const name = v.constructor.name;
    if (typeof name === "string") return name;
  } catch {}
  return "an object";
}

// Set when a walk meets an integer beyond 2^53 - 1.
let unsafeInteger = false;

// The JSON text of v at path, members named skip left out; throws Refusal.
function text(v, depth, maxDepth, path, skip) {
  switch (typeof v) {
    case "string":
      if (!wellFormed(v)) throw new Refusal(path, "surrogate");
      return JSON.stringify(v);
    case "number":
      if (!Number.isFinite(v)) throw new Refusal(path, "number", String(v));
      if (Number.isInteger(v) && Math.abs(v) > Number.MAX_SAFE_INTEGER) unsafeInteger = true;
      return String(v);
    case "boolean":
      return String(v);
    case "object":
      break;
    case "undefined":
    case "bigint":
      throw new Refusal(path, typeof v);
    default:
      throw new Refusal(path, "function");
  }
  if (v === null) return "null";
  if (depth >= maxDepth) throw new Refusal(path, "depth");
  let out;
  if (Array.isArray(v)) {
    out = "[";
    for (let i = 0; i < v.length; i++) out += (i ? "," : "") + text(v[i], depth + 1, maxDepth, path + "[" + i + "]");
    return out + "]";
  }
  if (!plainObject(v)) throw new Refusal(path, "class", constructorName(v));
  out = "{";
  for (const key of Object.keys(v).sort()) {
    if (!wellFormed(key)) throw new Refusal(member(path, "(member name)"), "surrogate");
    if (key === skip) continue;
    let value;
    try {
      value = v[key];
    } catch {
      throw new Refusal(path, "unreadable", key);
    }
    if (value === undefined) continue;
    out += (out.length > 1 ? "," : "") + JSON.stringify(key) + ":" + text(value, depth + 1, maxDepth, member(path, key));
  }
  return out + "}";
}

const refusal = (err) => (err instanceof Refusal ? err.r : ["", "opaque", String(err)]);

// value as JSON text, or a refusal.
export function jsonText(value, maxDepth) {
  try {
    return text(value, 0, maxDepth, "");
  } catch (err) {
    return refusal(err);
  }
}

const encoder = new TextEncoder();

// The events as UTF-8 in one buffer, for one copy into wasm: for each, its
// fields but the payload, then its payload in canonical form; or, where
// the payload is not a plain object or holds an unsafe integer, the whole
// event, then nothing (a canonical payload is never empty), for Rust to
// check. Returns [bytes, lengths], lengths in bytes, or a refusal with the
// index of its event appended.
export function eventTexts(events, maxDepth) {
  const texts = [];
  let units = 0;
  for (let i = 0; i < events.length; i++) {
    const e = events[i];
    try {
      unsafeInteger = false;
      let fields, payload;
      if (plainObject(e)) {
        let p;
        try {
          p = e.payload;
        } catch {
          throw new Refusal("", "unreadable", "payload");
        }
        if (plainObject(p)) {
          payload = text(p, 1, maxDepth, "payload");
          fields = text(e, 0, maxDepth, "", "payload");
        }
      }
      if (payload === undefined || unsafeInteger) {
        fields = text(e, 0, maxDepth, "");
        payload = "";
      }
      texts.push(fields, payload);
      units += fields.length + payload.length;
    } catch (err) {
      return [...refusal(err), i];
    }
  }
  // UTF-8 takes at most 3 bytes per UTF-16 code unit.
  const bytes = new Uint8Array(units * 3);
  const lengths = new Uint32Array(texts.length);
  let at = 0;
  texts.forEach((t, i) => {
    at += lengths[i] = encoder.encodeInto(t, bytes.subarray(at)).written;
  });
  return [bytes.subarray(0, at), lengths];
}
