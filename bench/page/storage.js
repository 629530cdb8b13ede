// The origin's storage use as the browser reports it, next to the bytes
// the Node driver reads from the profile folder.

export async function usage() {
  const e = await navigator.storage.estimate();
  return { usage: e.usage, indexedDB: e.usageDetails?.indexedDB ?? null };
}
