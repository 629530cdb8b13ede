// WebCrypto AES-256-GCM in the same page, as the yardstick for annal's own
// AES-GCM (the `aes-gcm` crate in wasm), which must run synchronously
// inside the append transaction and so cannot use WebCrypto.

import { now, throughput } from "./stats.js";

/** `n` sequential `crypto.subtle.encrypt` calls on `bytes`-byte buffers, each awaited. */
export async function encrypt({ bytes, n }) {
  const key = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt"]);
  const data = new Uint8Array(bytes);
  for (let at = 0; at < bytes; at += 65536) crypto.getRandomValues(data.subarray(at, Math.min(bytes, at + 65536)));
  const iv = new Uint8Array(12);
  const view = new DataView(iv.buffer);
  let out = 0;
  const t0 = now();
  for (let i = 0; i < n; i++) {
    view.setUint32(8, i);
    out += (await crypto.subtle.encrypt({ name: "AES-GCM", iv }, key, data)).byteLength;
  }
  const ms = now() - t0;
  if (out !== n * (bytes + 16)) throw new Error("WebCrypto returned ciphertexts of an unexpected size");
  const t = throughput(n, ms);
  return { ...t, bytes: n * bytes, mbPerSec: Math.round(((n * bytes) / 1e6 / (ms / 1000)) * 10) / 10 };
}
