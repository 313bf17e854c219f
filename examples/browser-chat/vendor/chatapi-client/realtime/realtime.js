import { randomId, sleep } from "../http.js";
import { defaultIo, SocketIOTransport } from "./socketio.js";
import { FATAL_CLOSE_CODES, OpenError } from "./transport.js";
import { defaultWebSocket, WebSocketTransport } from "./websocket.js";
/**
 * A socket that survives reconnects: it reconnects with backoff, then asks `sync
 * {room_id, after_seq}` for every room it has seen, and hands `message.created` to the
 * application once per seq and in seq order (a gap in live events triggers a sync too).
 * Other server events pass through as they come. Lifecycle events: `open` (the
 * `connected` data), `reconnecting` `{attempt, delayMs}`, `close` `{code, reason}`, `error`.
 */
export class RealtimeClient {
    options;
    handlers = new Map();
    last = new Map();
    pending = new Map();
    syncing = new Map();
    resync = new Set();
    transport;
    closed = false;
    connecting;
    constructor(options) {
        this.options = options;
        for (const [room, seq] of Object.entries(options.positions ?? {}))
            this.last.set(room, seq);
    }
    /** Subscribe to an event; answers the unsubscribe function. */
    on(event, handler) {
        let set = this.handlers.get(event);
        if (!set)
            this.handlers.set(event, (set = new Set()));
        set.add(handler);
        return () => set.delete(handler);
    }
    /** The last seq handed to the application per room. */
    positions() {
        return Object.fromEntries(this.last);
    }
    /** Opens the connection (retrying with backoff); resolves once connected. */
    connect() {
        this.closed = false;
        this.connecting ??= this.openWithRetry().finally(() => {
            this.connecting = undefined;
        });
        return this.connecting;
    }
    /** Closes for good (no reconnect). */
    close() {
        this.closed = true;
        this.transport?.close();
        this.transport = undefined;
    }
    /** A client event and its answer (`sync`, `read`, `typing`, `ping`, …). */
    request(event, data = {}) {
        if (!this.transport)
            return Promise.reject(new Error("not connected"));
        return this.transport.emit(event, data, this.options.ackTimeoutMs ?? 10_000);
    }
    /** `message.send` with a `client_message_id` (a UUID unless given). */
    send(roomId, body) {
        const input = typeof body === "string" ? { content: body } : body;
        return this.request("message.send", {
            ...input,
            room_id: roomId,
            client_message_id: input.client_message_id ?? randomId(),
        });
    }
    emitLocal(event, data) {
        for (const handler of this.handlers.get(event) ?? []) {
            try {
                handler(data);
            }
            catch (error) {
                if (event !== "error")
                    this.emitLocal("error", error);
            }
        }
    }
    async openWithRetry() {
        const policy = this.options.reconnect ?? {};
        const initial = policy.initialMs ?? 250;
        const cap = policy.maxMs ?? 5_000;
        for (let attempt = 1;; attempt++) {
            if (this.closed)
                throw new Error("closed");
            try {
                const transport = await this.makeTransport();
                await transport.open();
                if (this.closed) {
                    transport.close();
                    throw new Error("closed");
                }
                this.transport = transport;
                for (const room of this.last.keys())
                    void this.recover(room);
                return;
            }
            catch (error) {
                const retryToken = typeof this.options.token === "function";
                if (error instanceof OpenError && error.fatal && !retryToken) {
                    this.emitLocal("error", error);
                    throw error;
                }
                if (this.closed || attempt >= (policy.maxAttempts ?? Infinity))
                    throw error;
                const delayMs = Math.min(cap, initial * 2 ** (attempt - 1)) * (0.75 + Math.random() * 0.5);
                this.emitLocal("reconnecting", { attempt, delayMs, error });
                await sleep(delayMs);
            }
        }
    }
    async makeTransport() {
        const handlers = {
            event: (name, data) => this.onEvent(name, data),
            closed: (code, reason) => this.onClosed(code, reason),
        };
        const token = typeof this.options.token === "function" ? await this.options.token() : this.options.token;
        const origin = this.options.baseUrl.replace(/\/+$/, "").replace(/\/api\/v1$/, "");
        if (this.options.transport === "socketio") {
            const auth = token ? { token } : { api_key: this.options.apiKey ?? "" };
            return new SocketIOTransport(origin, auth, this.options.io ?? (await defaultIo()), handlers);
        }
        const query = token ? `token=${encodeURIComponent(token)}` : `api_key=${encodeURIComponent(this.options.apiKey ?? "")}`;
        const url = `${origin.replace(/^http/, "ws")}/api/v1/websocket/open?${query}`;
        return new WebSocketTransport(url, this.options.WebSocket ?? (await defaultWebSocket()), handlers);
    }
    onClosed(code, reason) {
        this.transport = undefined;
        this.emitLocal("close", { code, reason });
        if (this.closed)
            return;
        if (code !== undefined && FATAL_CLOSE_CODES.has(code) && typeof this.options.token !== "function") {
            this.closed = true;
            return;
        }
        this.connect().catch((error) => this.emitLocal("error", error));
    }
    onEvent(name, data) {
        if (name === "connected") {
            this.emitLocal("open", data);
            return;
        }
        if (name === "message.created") {
            this.accept(data, true);
            return;
        }
        this.emitLocal(name, data);
    }
    /** Hands `message` over if it is the next of its room; buffers it otherwise. */
    accept(message, live) {
        const room = message.room_id;
        const last = this.last.get(room);
        if (last === undefined) {
            // First sight of this room: it starts here (pass `positions` to start earlier).
            this.last.set(room, message.seq);
            this.emitLocal("message.created", message);
            return;
        }
        if (message.seq <= last)
            return;
        let buffered = this.pending.get(room);
        if (!buffered)
            this.pending.set(room, (buffered = new Map()));
        buffered.set(message.seq, message);
        this.drain(room);
        if (live && buffered.size > 0)
            void this.recover(room);
    }
    drain(room) {
        const buffered = this.pending.get(room);
        if (!buffered)
            return;
        let last = this.last.get(room) ?? 0;
        for (let next = buffered.get(last + 1); next; next = buffered.get(last + 1)) {
            buffered.delete(last + 1);
            last += 1;
            this.last.set(room, last);
            this.emitLocal("message.created", next);
        }
    }
    /** `sync` after the room's last seq until nothing more (one run per room at a time). */
    recover(room) {
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
                    const answer = await this.request("sync", {
                        room_id: room,
                        after_seq: after,
                        limit: 200,
                    });
                    for (const message of answer.messages)
                        this.accept(message, false);
                    if (!answer.has_more || answer.messages.length === 0)
                        break;
                }
            } while (this.resync.has(room));
        })()
            .catch((error) => {
            // A dropped connection ends the sync; the reconnect runs it again.
            if (this.transport)
                this.emitLocal("error", error);
        })
            .finally(() => {
            this.syncing.delete(room);
            // Asked again while this run was failing (a reconnect): run on the new connection.
            if (this.resync.delete(room) && this.transport)
                void this.recover(room);
        });
        this.syncing.set(room, run);
        return run;
    }
}
