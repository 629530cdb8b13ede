/** The Background Sync (and periodic sync) tag annal registers and answers. */
export const BACKGROUND_SYNC_TAG = "annal-sync";

/** What a page tells the service worker (see `annal/sw`). */
export type WorkerMessage =
  /** Sync store `name` now. */
  | { annal: "sync"; name: string }
  /** The session key of a passphrase unlock of store `name`, kept in the worker's memory only. */
  | { annal: "session"; name: string; key: CryptoKey };

/** Posts `message` to a service worker; a worker that went away is not an error. */
export function postToServiceWorker(worker: ServiceWorker, message: WorkerMessage): void {
  try {
    worker.postMessage(message);
  } catch {
    // Replaced or stopped meanwhile: the next requestBackgroundSync() tries again.
  }
}

/** How long a page waits for the service worker to confirm a session key. */
const HANDOVER_MS = 5_000;

/**
 * Posts `message` with a reply port and resolves once the worker confirms
 * it (or with `false` after a while), so that what it carries is in place
 * before a sync event can need it.
 */
export function postAndConfirm(worker: ServiceWorker, message: WorkerMessage): Promise<boolean> {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    const timer = setTimeout(() => done(false), HANDOVER_MS);
    function done(ok: boolean) {
      clearTimeout(timer);
      channel.port1.close();
      resolve(ok);
    }
    channel.port1.onmessage = () => done(true);
    try {
      worker.postMessage(message, [channel.port2]);
    } catch {
      done(false);
    }
  });
}

/** Whether `data` is a message of annal's. */
export function isWorkerMessage(data: unknown): data is WorkerMessage {
  const m = data as Partial<WorkerMessage> | null;
  return !!m && typeof m === "object" && (m.annal === "sync" || m.annal === "session") && typeof m.name === "string";
}
