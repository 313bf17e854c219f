import { randomId, sleep } from "../http.js";
import type { Message, MessageInput } from "../types.js";
import { defaultIo, type IoFactory, SocketIOTransport } from "./socketio.js";
import { FATAL_CLOSE_CODES, OpenError, type Transport } from "./transport.js";
import { defaultWebSocket, type WebSocketCtor, WebSocketTransport } from "./websocket.js";

export interface RealtimeOptions {
  /** The server's origin, e.g. `http://127.0.0.1:8000`. */
  baseUrl: string;
  /** A user (or master) key. */
  apiKey?: string;
  /** A connect token, or a function answering a fresh one for every (re)connect. */
  token?: string | (() => string | Promise<string>);
  /** `"websocket"` (default) or `"socketio"`. */
  transport?: "websocket" | "socketio";
  /** Room id → last seq the application already has: recovery syncs after it. */
  positions?: Record<string, number>;
  /** Reconnect backoff: first step, cap (ms) and attempts before giving up (default forever). */
  reconnect?: { initialMs?: number; maxMs?: number; maxAttempts?: number };
  /** Answer timeout for client events (default 10 000 ms). */
  ackTimeoutMs?: number;
  /** `socket.io-client`'s `io` (browsers without a bundler: the bundle's `window.io`). */
  io?: IoFactory;
  /** A WebSocket class (default: the global one, else the `ws` package). */
  WebSocket?: WebSocketCtor;
}

type Handler = (data: any) => void;

/**
 * A socket that survives reconnects: it reconnects with backoff, then asks `sync
 * {room_id, after_seq}` for every room it has seen, and hands `message.created` to the
 * application once per seq and in seq order (a gap in live events triggers a sync too).
 * Other server events pass through as they come. Lifecycle events: `open` (the
 * `connected` data), `reconnecting` `{attempt, delayMs}`, `close` `{code, reason}`, `error`.
 */
export class RealtimeClient {
  private readonly handlers = new Map<string, Set<Handler>>();
  private readonly last = new Map<string, number>();
  private readonly pending = new Map<string, Map<number, Message>>();
  private readonly syncing = new Map<string, Promise<void>>();
  private readonly resync = new Set<string>();
  private transport: Transport | undefined;
  private closed = false;
  private connecting: Promise<void> | undefined;

  constructor(private readonly options: RealtimeOptions) {
    for (const [room, seq] of Object.entries(options.positions ?? {})) this.last.set(room, seq);
  }

  /** Subscribe to an event; answers the unsubscribe function. */
  on(event: string, handler: Handler): () => void {
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, (set = new Set()));
    set.add(handler);
    return () => set.delete(handler);
  }

  /** The last seq handed to the application per room. */
  positions(): Record<string, number> {
    return Object.fromEntries(this.last);
  }

  /** Opens the connection (retrying with backoff); resolves once connected. */
  connect(): Promise<void> {
    this.closed = false;
    this.connecting ??= this.openWithRetry().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  /** Closes for good (no reconnect). */
  close(): void {
    this.closed = true;
    this.transport?.close();
    this.transport = undefined;
  }

  /** A client event and its answer (`sync`, `read`, `typing`, `ping`, …). */
  request<T = unknown>(event: string, data: unknown = {}): Promise<T> {
    if (!this.transport) return Promise.reject(new Error("not connected"));
    return this.transport.emit(event, data, this.options.ackTimeoutMs ?? 10_000) as Promise<T>;
  }

  /** `message.send` with a `client_message_id` (a UUID unless given). */
  send(roomId: string, body: MessageInput | string): Promise<Message> {
    const input = typeof body === "string" ? { content: body } : body;
    return this.request<Message>("message.send", {
      ...input,
      room_id: roomId,
      client_message_id: input.client_message_id ?? randomId(),
    });
  }

  private emitLocal(event: string, data: unknown): void {
    for (const handler of this.handlers.get(event) ?? []) {
      try {
        handler(data);
      } catch (error) {
        if (event !== "error") this.emitLocal("error", error);
      }
    }
  }

  private async openWithRetry(): Promise<void> {
    const policy = this.options.reconnect ?? {};
    const initial = policy.initialMs ?? 250;
    const cap = policy.maxMs ?? 5_000;
    for (let attempt = 1; ; attempt++) {
      if (this.closed) throw new Error("closed");
      try {
        const transport = await this.makeTransport();
        await transport.open();
        if (this.closed) {
          transport.close();
          throw new Error("closed");
        }
        this.transport = transport;
        for (const room of this.last.keys()) void this.recover(room);
        return;
      } catch (error) {
        const retryToken = typeof this.options.token === "function";
        if (error instanceof OpenError && error.fatal && !retryToken) {
          this.emitLocal("error", error);
          throw error;
        }
        if (this.closed || attempt >= (policy.maxAttempts ?? Infinity)) throw error;
        const delayMs = Math.min(cap, initial * 2 ** (attempt - 1)) * (0.75 + Math.random() * 0.5);
        this.emitLocal("reconnecting", { attempt, delayMs, error });
        await sleep(delayMs);
      }
    }
  }

  private async makeTransport(): Promise<Transport> {
    const handlers = {
      event: (name: string, data: unknown) => this.onEvent(name, data),
      closed: (code: number | undefined, reason: string) => this.onClosed(code, reason),
    };
    const token =
      typeof this.options.token === "function" ? await this.options.token() : this.options.token;
    const origin = this.options.baseUrl.replace(/\/+$/, "").replace(/\/api\/v1$/, "");
    if (this.options.transport === "socketio") {
      const auth: Record<string, string> = token ? { token } : { api_key: this.options.apiKey ?? "" };
      return new SocketIOTransport(origin, auth, this.options.io ?? (await defaultIo()), handlers);
    }
    const query = token ? `token=${encodeURIComponent(token)}` : `api_key=${encodeURIComponent(this.options.apiKey ?? "")}`;
    const url = `${origin.replace(/^http/, "ws")}/api/v1/websocket/open?${query}`;
    return new WebSocketTransport(url, this.options.WebSocket ?? (await defaultWebSocket()), handlers);
  }

  private onClosed(code: number | undefined, reason: string): void {
    this.transport = undefined;
    this.emitLocal("close", { code, reason });
    if (this.closed) return;
    if (code !== undefined && FATAL_CLOSE_CODES.has(code) && typeof this.options.token !== "function") {
      this.closed = true;
      return;
    }
    this.connect().catch((error) => this.emitLocal("error", error));
  }

  private onEvent(name: string, data: unknown): void {
    if (name === "connected") {
      this.emitLocal("open", data);
      return;
    }
    if (name === "message.created") {
      this.accept(data as Message, true);
      return;
    }
    this.emitLocal(name, data);
  }

  /** Hands `message` over if it is the next of its room; buffers it otherwise. */
  private accept(message: Message, live: boolean): void {
    const room = message.room_id;
    const last = this.last.get(room);
    if (last === undefined) {
      // First sight of this room: it starts here (pass `positions` to start earlier).
      this.last.set(room, message.seq);
      this.emitLocal("message.created", message);
      return;
    }
    if (message.seq <= last) return;
    let buffered = this.pending.get(room);
    if (!buffered) this.pending.set(room, (buffered = new Map()));
    buffered.set(message.seq, message);
    this.drain(room);
    if (live && buffered.size > 0) void this.recover(room);
  }

  private drain(room: string): void {
    const buffered = this.pending.get(room);
    if (!buffered) return;
    let last = this.last.get(room) ?? 0;
    for (let next = buffered.get(last + 1); next; next = buffered.get(last + 1)) {
      buffered.delete(last + 1);
      last += 1;
      this.last.set(room, last);
      this.emitLocal("message.created", next);
    }
  }

  /** `sync` after the room's last seq until nothing more (one run per room at a time). */
  private recover(room: string): Promise<void> {
    const running = this.syncing.get(room);
    if (running) {
      this.resync.add(room);
      return running;
    }
    const run = (async () => {
      do {
        this.resync.delete(room);
        for (;;) {
          const after = this.last.get(room) ?? 0;
          const answer = await this.request<{ messages: Message[]; has_more: boolean }>("sync", {
            room_id: room,
            after_seq: after,
            limit: 200,
          });
          for (const message of answer.messages) this.accept(message, false);
          if (!answer.has_more || answer.messages.length === 0) break;
        }
      } while (this.resync.has(room));
    })()
      .catch((error) => {
        // A dropped connection ends the sync; the reconnect runs it again.
        if (this.transport) this.emitLocal("error", error);
      })
      .finally(() => {
        this.syncing.delete(room);
        // Asked again while this run was failing (a reconnect): run on the new connection.
        if (this.resync.delete(room) && this.transport) void this.recover(room);
      });
    this.syncing.set(room, run);
    return run;
  }
}
