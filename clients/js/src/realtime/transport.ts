/** What the realtime client needs of a connection, whichever the wire. */
export interface Transport {
  /** Resolves once the server accepted the connection (it is then subscribed). */
  open(): Promise<void>;
  /** A client event answered by its acknowledgement (rejects with the problem, or on close). */
  emit(event: string, data: unknown, timeoutMs: number): Promise<unknown>;
  close(): void;
}

export interface TransportHandlers {
  event(name: string, data: unknown): void;
  /** The connection ended after it had opened. */
  closed(code: number | undefined, reason: string): void;
}

/** A failed open: `fatal` when retrying with the same credentials cannot help. */
export class OpenError extends Error {
  constructor(
    message: string,
    readonly fatal: boolean,
    readonly code?: number,
  ) {
    super(message);
    this.name = "OpenError";
  }
}

/** Close codes after which the same credentials will be refused again (docs/realtime.md). */
export const FATAL_CLOSE_CODES = new Set([4401, 4403, 4429]);
