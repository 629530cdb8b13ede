// The WebCrypto calls behind key-encryption keys. Key-encryption keys are
// non-extractable CryptoKeys and never enter wasm memory; only the master
// key does, and every JavaScript copy of secret bytes is zeroed after use.

const encoder = new TextEncoder();

// PBKDF2-HMAC-SHA256 of the NFC passphrase, as a non-extractable AES-GCM key.
export async function deriveKek(passphrase, salt, iterations) {
  const bytes = encoder.encode(passphrase.normalize("NFC"));
  try {
    const base = await crypto.subtle.importKey("raw", bytes, "PBKDF2", false, ["deriveKey"]);
    return await crypto.subtle.deriveKey(
      { name: "PBKDF2", salt, iterations, hash: "SHA-256" },
      base,
      { name: "AES-GCM", length: 256 },
      false,
      ["encrypt", "decrypt"],
    );
  } finally {
    bytes.fill(0);
  }
}

// Raw key bytes (a copy owned by JavaScript) as a non-extractable AES-GCM key.
export async function importKek(raw) {
  try {
    return await crypto.subtle.importKey("raw", raw, { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
  } finally {
    raw.fill(0);
  }
}

// Why `key` cannot be a key-encryption key, or "" if it can.
export function kekProblem(key) {
  if (typeof CryptoKey === "undefined" || !(key instanceof CryptoKey)) return "it is not a CryptoKey";
  const a = key.algorithm;
  if (a.name !== "AES-GCM" || a.length !== 256) return `it is a ${a.name}${a.length ? "-" + a.length : ""} key, not AES-GCM with 256 bits`;
  if (!key.usages.includes("encrypt") || !key.usages.includes("decrypt")) return "its usages must include encrypt and decrypt";
  return "";
}

// AES-GCM encryption of `bytes` (a JavaScript-owned copy, zeroed here).
export async function wrap(kek, iv, aad, bytes) {
  try {
    return new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: aad }, kek, bytes));
  } finally {
    bytes.fill(0);
  }
}

// AES-GCM decryption; null if the tag does not authenticate (a wrong key).
export async function unwrap(kek, iv, aad, bytes) {
  try {
    return new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv, additionalData: aad }, kek, bytes));
  } catch (e) {
    if (e && e.name === "OperationError") return null;
    throw e;
  }
}

// Whether this context has WebCrypto (only secure contexts do).
export function subtleAvailable() {
  return typeof crypto !== "undefined" && typeof crypto.subtle === "object" && crypto.subtle !== null;
}

// A data key (a JavaScript-owned copy, zeroed here) as a non-extractable
// AES-GCM key.
export async function importDataKey(raw) {
  try {
    return await crypto.subtle.importKey("raw", raw, { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
  } finally {
    raw.fill(0);
  }
}

// One WebCrypto call per record, all started at once: record i has the
// 12-byte nonce at 12·i, its AAD and data next in `aads` and `data`
// (lengths in `aadLens`, `dataLens`); `call(i, params, bytes)` starts it.
function perRecord(nonces, aads, aadLens, data, dataLens, call) {
  const jobs = [];
  let a = 0;
  let d = 0;
  for (let i = 0; i < dataLens.length; i++) {
    const iv = nonces.subarray(12 * i, 12 * i + 12);
    const additionalData = aads.subarray(a, a + aadLens[i]);
    jobs.push(call(i, { name: "AES-GCM", iv, additionalData }, data.subarray(d, d + dataLens[i])));
    a += aadLens[i];
    d += dataLens[i];
  }
  return Promise.all(jobs);
}

// The ArrayBuffers of `parts` (null ones skipped) concatenated; each part
// is zeroed once copied.
function joined(parts) {
  const out = new Uint8Array(parts.reduce((n, b) => n + (b ? b.byteLength : 0), 0));
  let at = 0;
  for (const b of parts) {
    if (!b) continue;
    const part = new Uint8Array(b);
    out.set(part, at);
    at += part.length;
    part.fill(0);
  }
  return out;
}

// AES-GCM of every record of one commit (record i's plaintext next in
// `plains`, lengths in `plainLens`). Returns the ciphertexts ‖ tags,
// concatenated in order. The plaintext copy is zeroed.
export async function sealAll(key, nonces, aads, aadLens, plains, plainLens) {
  try {
    return joined(await perRecord(nonces, aads, aadLens, plains, plainLens, (_, params, bytes) => crypto.subtle.encrypt(params, key, bytes)));
  } finally {
    plains.fill(0);
  }
}

// AES-GCM decryption of the sealed records of the pages one read brought:
// record i is under keys[keyIndex[i]], its ciphertext ‖ tag next in
// `sealed` (lengths in `sealedLens`). Returns the plaintexts of the records
// that opened, concatenated in order, and each record's plaintext length,
// or 0xffffffff where WebCrypto refused it (the reader then opens that page
// itself and reports what is wrong).
export async function openAll(keys, keyIndex, nonces, aads, aadLens, sealed, sealedLens) {
  const parts = await perRecord(nonces, aads, aadLens, sealed, sealedLens, (i, params, bytes) =>
    crypto.subtle.decrypt(params, keys[keyIndex[i]], bytes).catch(() => null),
  );
  const lens = Uint32Array.from(parts, (b) => (b ? b.byteLength : 0xffffffff));
  return [joined(parts), lens];
}
