import { ChatAPIError } from "../errors.js";
import { FATAL_CLOSE_CODES, OpenError } from "./transport.js";
/** `socket.io-client`'s `io` (pass your own, e.g. the browser bundle's `window.io`). */
export async function defaultIo() {
    const mod = await import("socket.io-client");
    return mod.io;
}
/** Socket.IO at path `/sockets`; answers come through acknowledgements. */
export class SocketIOTransport {
    origin;
    auth;
    io;
    handlers;
    socket;
    closeCode;
    // Answers still awaited: a dropped connection fails them at once, not at their timeout.
    waiting = new Set();
    constructor(origin, auth, io, handlers) {
        this.origin = origin;
        this.auth = auth;
        this.io = io;
        this.handlers = handlers;
    }
    open() {
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
            socket.on("connect_error", (error) => {
                socket.close();
                // Transport failures carry a type; a refusal by the server carries only its reason.
                const refused = !error.type && error.message !== "timeout" && !/try again/i.test(error.message);
                reject(new OpenError(error.message, refused, refused ? 4401 : undefined));
            });
            socket.on("disconnect_reason", (data) => {
                this.closeCode = data?.code;
            });
            socket.on("disconnect", (reason) => {
                for (const fail of this.waiting)
                    fail(new Error(`connection closed (${reason})`));
                this.waiting.clear();
                if (opened)
                    this.handlers.closed(this.closeCode, reason);
            });
            socket.onAny((event, data) => {
                if (event !== "disconnect_reason")
                    this.handlers.event(event, data);
            });
        });
    }
    emit(event, data, timeoutMs) {
        const socket = this.socket;
        if (!socket?.connected)
            return Promise.reject(new Error("not connected"));
        return new Promise((resolve, reject) => {
            this.waiting.add(reject);
            socket.timeout(timeoutMs).emit(event, data, (err, answer) => {
                if (!this.waiting.delete(reject))
                    return; // already failed by the disconnect
                if (err)
                    return reject(new Error(`${event}: no answer in ${timeoutMs} ms`));
                const problem = answer?.error;
                if (problem)
                    reject(new ChatAPIError(problem.status ?? 400, problem));
                else
                    resolve(answer);
            });
        });
    }
    close() {
        this.socket?.close();
    }
}
export { FATAL_CLOSE_CODES };
