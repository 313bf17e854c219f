import { ChatAPIConnectionError, ChatAPIError, type Problem } from "./errors.js";

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

/** Options of a `ChatAPI` (and of its `Http`). */
export interface ClientOptions {
  /** A master or user key (`ck_…`). */
  apiKey: string;
  /** The server's origin, e.g. `http://127.0.0.1:8000` (`/api/v1` is added unless present). */
  baseUrl?: string;
  /** Your own `fetch` (defaults to the global one). */
  fetch?: FetchLike;
  /** Retries after the first try on 429, 5xx and network errors (default 4). */
  maxRetries?: number;
  /** First backoff step in ms, doubled each retry, ±25% jitter (default 250). */
  backoffMs?: number;
  /** The longest single wait, also for a `Retry-After` (default 60 000 ms). */
  maxDelayMs?: number;
  /** Per-try timeout in ms (default 30 000). */
  timeoutMs?: number;
}

export type Query = Record<string, string | number | boolean | undefined | null>;

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  /** Sent as `Idempotency-Key`; also makes a POST safe to retry after a network error. */
  idempotencyKey?: string;
  /** A POST whose body carries its own idempotency (e.g. `client_message_id`). */
  idempotent?: boolean;
}

const SAFE_METHODS = new Set(["GET", "HEAD", "PUT", "DELETE", "OPTIONS"]);

/** A random UUID (crypto.randomUUID exists in Node 18+ and secure browser contexts). */
export function randomId(): string {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === "function") return c.randomUUID();
  const bytes = new Uint8Array(16);
  c.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Retry-After in ms: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** The fetch layer: auth, JSON, problem+json errors, and retries with backoff. */
export class Http {
  readonly apiBase: string;
  readonly origin: string;
  readonly apiKey: string;
  private readonly fetchFn: FetchLike;
  private readonly maxRetries: number;
  private readonly backoffMs: number;
  private readonly maxDelayMs: number;
  private readonly timeoutMs: number;

  constructor(options: ClientOptions) {
    let base = (options.baseUrl ?? defaultOrigin()).replace(/\/+$/, "");
    if (!base.endsWith("/api/v1")) base += "/api/v1";
    this.apiBase = base;
    this.origin = base.slice(0, -"/api/v1".length);
    this.apiKey = options.apiKey;
    const f = options.fetch ?? globalThis.fetch;
    // Unbound window.fetch throws "Illegal invocation" in browsers.
    this.fetchFn = options.fetch ? f : (input, init) => globalThis.fetch(input, init);
    this.maxRetries = options.maxRetries ?? 4;
    this.backoffMs = options.backoffMs ?? 250;
    this.maxDelayMs = options.maxDelayMs ?? 60_000;
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** One API call; answers the parsed JSON body (undefined for 204). */
  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const url = this.apiBase + path + queryString(options.query);
    const headers: Record<string, string> = {
      Authorization: `Bearer ${this.apiKey}`,
      Accept: "application/json, application/problem+json",
    };
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    if (options.idempotencyKey) headers["Idempotency-Key"] = options.idempotencyKey;
    // A request that may have reached the server is repeated only if repeating is harmless.
    const replayable = SAFE_METHODS.has(method) || !!options.idempotencyKey || !!options.idempotent;
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    for (let attempt = 0; ; attempt++) {
      const last = attempt >= this.maxRetries;
      let response: Response;
      try {
        response = await this.fetchFn(url, {
          method,
          headers,
          body,
          signal: timeoutSignal(this.timeoutMs),
        });
      } catch (error) {
        if (last || !replayable) {
          throw new ChatAPIConnectionError(`${method} ${path}: ${describe(error)}`, { cause: error });
        }
        await sleep(this.backoff(attempt));
        continue;
      }
      if (response.ok) {
        if (response.status === 204) return undefined as T;
        const text = await response.text();
        return (text ? JSON.parse(text) : undefined) as T;
      }
      const retryable =
        response.status === 429 ||
        (response.status === 409 && response.headers.has("Retry-After")) ||
        (response.status >= 500 && replayable);
      if (retryable && !last) {
        await response.body?.cancel().catch(() => undefined);
        const hinted = parseRetryAfter(response.headers.get("Retry-After"));
        await sleep(Math.min(this.maxDelayMs, hinted ?? this.backoff(attempt)));
        continue;
      }
      throw new ChatAPIError(response.status, await readProblem(response), response.headers);
    }
  }

  private backoff(attempt: number): number {
    const step = Math.min(this.maxDelayMs, this.backoffMs * 2 ** attempt);
    return step * (0.75 + Math.random() * 0.5);
  }
}

function defaultOrigin(): string {
  const loc = (globalThis as { location?: { origin?: string } }).location;
  return loc?.origin ?? "http://127.0.0.1:8000";
}

function queryString(query: Query | undefined): string {
  if (!query) return "";
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null) params.append(key, String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

function timeoutSignal(ms: number): AbortSignal | undefined {
  return typeof AbortSignal.timeout === "function" ? AbortSignal.timeout(ms) : undefined;
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as { cause?: unknown }).cause;
    return cause instanceof Error ? `${error.message} (${cause.message})` : error.message;
  }
  return String(error);
}

async function readProblem(response: Response): Promise<Problem> {
  const text = await response.text().catch(() => "");
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === "object") return parsed as Problem;
  } catch {
    // Not JSON (a proxy's page): keep the text as the detail.
  }
  return { status: response.status, title: response.statusText, detail: text.slice(0, 500) };
}
