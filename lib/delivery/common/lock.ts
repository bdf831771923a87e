/**
 * Per-key serialization inside this process, and the per-BMC flash lock built on it: the BMC daemon has
 * a single transfer service, and a new flash request cancels the one in progress
 * (turing-machines/bmcd streaming_data_service.rs), so flashes through one BMC wait for each other.
 */

/** Serializes async work per key (e.g. one flash at a time per BMC) inside this process. */
export class KeyedMutex {
  private tails = new Map<string, Promise<void>>();
  /** Whether work is running or queued for `key`. */
  busy(key: string): boolean {
    return this.tails.has(key);
  }
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.tails.set(key, tail);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

/** One flash at a time per BMC endpoint ("address:port"), in this process. */
export const bmcFlashLock = new KeyedMutex();
