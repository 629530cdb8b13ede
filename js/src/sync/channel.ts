import type { SyncReport } from "../types.js";

/** What contexts of one store tell each other. */
export type ChannelMessage =
  /** Events `from..=to` (device seqs) were appended in the sending context. */
  | { type: "appended"; from: number; to: number }
  /**
   * Events of other devices, pulled and verified by the sending context:
   * the JSON text of their array. A string is copied in one piece, where
   * an array of events is cloned member by member; a receiver parses it
   * only when one of its subscribers wants remote events.
   */
  | { type: "pulled"; json: string }
  /** Sync status may have changed (a pass started or ended, or events came). */
  | { type: "status"; syncing: boolean }
  /** Asks the context that holds the sync lock to run a pass. */
  | { type: "sync-request"; id: string }
  /** The lock holder took the request. */
  | { type: "sync-ack"; id: string }
  /** The pass asked for ended: a report or a serialized AnnalError. */
  | { type: "sync-reply"; id: string; report?: SyncReport; error?: { code: string; message: string } };

/**
 * The BroadcastChannel of one store: every page, worker and service worker
 * of the origin that has the store open hears the others. BroadcastChannel
 * does not echo to its sender, so callers also handle their own messages.
 */
export class StoreChannel {
  readonly #channel: BroadcastChannel | undefined;
  readonly #listeners = new Set<(message: ChannelMessage) => void>();

  constructor(name: string) {
    this.#channel = typeof BroadcastChannel === "undefined" ? undefined : new BroadcastChannel(channelName(name));
    if (this.#channel) {
      this.#channel.onmessage = (e: MessageEvent) => {
        const message = e.data as ChannelMessage;
        if (!message || typeof message !== "object" || typeof message.type !== "string") return;
        for (const listener of [...this.#listeners]) listener(message);
      };
    }
  }

  post(message: ChannelMessage): void {
    try {
      this.#channel?.postMessage(message);
    } catch {
      // A closed channel: this context is going away.
    }
  }

  /** Adds a listener; returns its removal. */
  listen(listener: (message: ChannelMessage) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  get listenerCount(): number {
    return this.#listeners.size;
  }

  close(): void {
    this.#listeners.clear();
    if (this.#channel) {
      this.#channel.onmessage = null;
      this.#channel.close();
    }
  }
}

/** The channel of store `name`. */
export function channelName(name: string): string {
  return `annal-sync:${name}`;
}

/** The Web Lock that one context of store `name` holds while it syncs. */
export function lockName(name: string): string {
  return `annal-sync:${name}`;
}
