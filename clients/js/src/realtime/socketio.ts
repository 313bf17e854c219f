import type { ManagerOptions, Socket, SocketOptions } from "socket.io-client";
import { ChatAPIError, type Problem } from "../errors.js";
import { FATAL_CLOSE_CODES, OpenError, type Transport, type TransportHandlers } from "./transport.js";

export type IoFactory = (uri: string, opts: Partial<ManagerOptions & SocketOptions>) => Socket;

/** `socket.io-client`'s `io` (pass your own, e.g. the browser bundle's `window.io`). */
export async function defaultIo(): Promise<IoFactory> {
  const mod = await import("socket.io-client");
  return mod.io as IoFactory;
}

/** Socket.IO at path `/sockets`; answers come through acknowledgements. */
export class SocketIOTransport implements Transport {
  private socket: Socket | undefined;
  private closeCode: number | undefined;
  // Answers still awaited: a dropped connection fails them at once, not at their timeout.
  private readonly waiting = new Set<(error: Error) => void>();

  constructor(
    private readonly origin: string,
    private readonly auth: Record<string, string>,
    private readonly io: IoFactory,
    private readonly handlers: TransportHandlers,
  ) {}

  open(): Promise<void> {
    return new Promise((resolve, reject) => {
      // Reconnection is the realtime client's job: it must sync after every reconnect.
      const socket = this.io(this.origin, {
        path: "/sockets",
        auth: this.auth,
        transports: ["websocket"],
        reconnection: false,
        forceNew: true,
        timeout: 10_000,
      });
      this.socket = socket;
      let opened = false;
      socket.on("connect", () => {
        opened = true;
        resolve();
      });
      socket.on("connect_error", (error: Error & { type?: string; data?: unknown }) => {
        socket.close();
        // Transport failures carry a type; a refusal by the server carries only its reason.
        const refused = !error.type && error.message !== "timeout" && !/try again/i.test(error.message);
        reject(new OpenError(error.message, refused, refused ? 4401 : undefined));
      });
      socket.on("disconnect_reason", (data: { code?: number }) => {
        this.closeCode = data?.code;
      });
      socket.on("disconnect", (reason: string) => {
        for (const fail of this.waiting) fail(new Error(`connection closed (${reason})`));
        this.waiting.clear();
        if (opened) this.handlers.closed(this.closeCode, reason);
      });
      socket.onAny((event: string, data: unknown) => {
        if (event !== "disconnect_reason") this.handlers.event(event, data);
      });
    });
  }

  emit(event: string, data: unknown, timeoutMs: number): Promise<unknown> {
    const socket = this.socket;
    if (!socket?.connected) return Promise.reject(new Error("not connected"));
    return new Promise((resolve, reject) => {
      this.waiting.add(reject);
      socket.timeout(timeoutMs).emit(event, data, (err: Error | null, answer: unknown) => {
        if (!this.waiting.delete(reject)) return; // already failed by the disconnect
        if (err) return reject(new Error(`${event}: no answer in ${timeoutMs} ms`));
        const problem = (answer as { error?: Problem } | null)?.error;
        if (problem) reject(new ChatAPIError(problem.status ?? 400, problem));
        else resolve(answer);
      });
    });
  }

  close(): void {
    this.socket?.close();
  }
}

export { FATAL_CLOSE_CODES };
