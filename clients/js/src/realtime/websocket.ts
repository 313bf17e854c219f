import { ChatAPIError, type Problem } from "../errors.js";
import { FATAL_CLOSE_CODES, OpenError, type Transport, type TransportHandlers } from "./transport.js";

/** The browser WebSocket shape; Node 22's global and the `ws` package have it too. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketCtor = new (url: string) => WebSocketLike;

interface Waiting {
  resolve(value: unknown): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

/** The global WebSocket (browsers, Node 22+), else the optional `ws` package (Node 18–21). */
export async function defaultWebSocket(): Promise<WebSocketCtor> {
  const global = (globalThis as { WebSocket?: WebSocketCtor }).WebSocket;
  if (global) return global;
  const name = "ws"; // not a literal: bundlers for browsers must not pull it in
  try {
    const mod = (await import(name)) as { default?: WebSocketCtor; WebSocket?: WebSocketCtor };
    const ctor = mod.WebSocket ?? mod.default;
    if (ctor) return ctor;
  } catch {
    // fall through to the explanation
  }
  throw new Error("no WebSocket here: on Node 18–21 install the `ws` package (npm i ws)");
}

/** `/api/v1/websocket/open`: JSON frames `{event, data, id}` answered by `ack`/`error`. */
export class WebSocketTransport implements Transport {
  private ws: WebSocketLike | undefined;
  private nextId = 0;
  private readonly waiting = new Map<string, Waiting>();
  private firstFrame: (() => void) | undefined;

  constructor(
    private readonly url: string,
    private readonly Ctor: WebSocketCtor,
    private readonly handlers: TransportHandlers,
  ) {}

  open(): Promise<void> {
    return new Promise((resolve, reject) => {
      let opened = false;
      const ws = new this.Ctor(this.url);
      this.ws = ws;
      // A refused key may be accepted and then closed with 4401: the open counts only
      // once the server's first frame (`connected`) arrived.
      ws.onopen = () => undefined;
      this.firstFrame = () => {
        opened = true;
        resolve();
      };
      ws.onerror = () => undefined; // a close event always follows, with the code
      ws.onmessage = (ev) => this.onFrame(ev.data);
      ws.onclose = (ev) => {
        this.failWaiting(new Error(`connection closed (${ev.code})`));
        if (!opened) {
          reject(new OpenError(ev.reason || `closed with ${ev.code}`, FATAL_CLOSE_CODES.has(ev.code), ev.code));
        } else {
          this.handlers.closed(ev.code, ev.reason);
        }
      };
    });
  }

  emit(event: string, data: unknown, timeoutMs: number): Promise<unknown> {
    const ws = this.ws;
    if (!ws || ws.readyState !== 1) return Promise.reject(new Error("not connected"));
    const id = String(++this.nextId);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`${event}: no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, { resolve, reject, timer });
      ws.send(JSON.stringify({ event, data, id }));
    });
  }

  close(): void {
    this.ws?.close(1000, "client closed");
  }

  private onFrame(raw: unknown): void {
    let frame: { event?: string; data?: unknown; id?: string | number };
    try {
      frame = JSON.parse(typeof raw === "string" ? raw : String(raw));
    } catch {
      return;
    }
    if (this.firstFrame) {
      this.firstFrame();
      this.firstFrame = undefined;
    }
    const id = frame.id === undefined || frame.id === null ? undefined : String(frame.id);
    const waiting = id === undefined ? undefined : this.waiting.get(id);
    if (waiting && id !== undefined) {
      this.waiting.delete(id);
      clearTimeout(waiting.timer);
      if (frame.event === "error") {
        const problem = (frame.data ?? {}) as Problem;
        waiting.reject(new ChatAPIError(problem.status ?? 400, problem));
      } else {
        waiting.resolve(frame.data);
      }
      return;
    }
    if (frame.event) this.handlers.event(frame.event, frame.data);
  }

  private failWaiting(error: Error): void {
    for (const waiting of this.waiting.values()) {
      clearTimeout(waiting.timer);
      waiting.reject(error);
    }
    this.waiting.clear();
  }
}
