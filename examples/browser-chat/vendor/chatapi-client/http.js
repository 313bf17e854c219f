import { ChatAPIConnectionError, ChatAPIError } from "./errors.js";
const SAFE_METHODS = new Set(["GET", "HEAD", "PUT", "DELETE", "OPTIONS"]);
/** A random UUID (crypto.randomUUID exists in Node 18+ and secure browser contexts). */
export function randomId() {
    const c = globalThis.crypto;
    if (c && typeof c.randomUUID === "function")
        return c.randomUUID();
    const bytes = new Uint8Array(16);
    c.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
export function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
}
/** Retry-After in ms: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value) {
    if (!value)
        return undefined;
    const seconds = Number(value);
    if (Number.isFinite(seconds))
        return Math.max(0, seconds * 1000);
    const date = Date.parse(value);
    return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}
/** The fetch layer: auth, JSON, problem+json errors, and retries with backoff. */
export class Http {
    apiBase;
    origin;
    apiKey;
    fetchFn;
    maxRetries;
    backoffMs;
    maxDelayMs;
    timeoutMs;
    constructor(options) {
        let base = (options.baseUrl ?? defaultOrigin()).replace(/\/+$/, "");
        if (!base.endsWith("/api/v1"))
            base += "/api/v1";
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
    async request(method, path, options = {}) {
        const url = this.apiBase + path + queryString(options.query);
        const headers = {
            Authorization: `Bearer ${this.apiKey}`,
            Accept: "application/json, application/problem+json",
        };
        if (options.body !== undefined)
            headers["Content-Type"] = "application/json";
        if (options.idempotencyKey)
            headers["Idempotency-Key"] = options.idempotencyKey;
        // A request that may have reached the server is repeated only if repeating is harmless.
        const replayable = SAFE_METHODS.has(method) || !!options.idempotencyKey || !!options.idempotent;
        const body = options.body === undefined ? undefined : JSON.stringify(options.body);
        for (let attempt = 0;; attempt++) {
            const last = attempt >= this.maxRetries;
            let response;
            try {
                response = await this.fetchFn(url, {
                    method,
                    headers,
                    body,
                    signal: timeoutSignal(this.timeoutMs),
                });
            }
            catch (error) {
                if (last || !replayable) {
                    throw new ChatAPIConnectionError(`${method} ${path}: ${describe(error)}`, { cause: error });
                }
                await sleep(this.backoff(attempt));
                continue;
            }
            if (response.ok) {
                if (response.status === 204)
                    return undefined;
                const text = await response.text();
                return (text ? JSON.parse(text) : undefined);
            }
            const retryable = response.status === 429 ||
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
    backoff(attempt) {
        const step = Math.min(this.maxDelayMs, this.backoffMs * 2 ** attempt);
        return step * (0.75 + Math.random() * 0.5);
    }
}
function defaultOrigin() {
    const loc = globalThis.location;
    return loc?.origin ?? "http://127.0.0.1:8000";
}
function queryString(query) {
    if (!query)
        return "";
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
        if (value !== undefined && value !== null)
            params.append(key, String(value));
    }
    const text = params.toString();
    return text ? `?${text}` : "";
}
function timeoutSignal(ms) {
    return typeof AbortSignal.timeout === "function" ? AbortSignal.timeout(ms) : undefined;
}
function describe(error) {
    if (error instanceof Error) {
        const cause = error.cause;
        return cause instanceof Error ? `${error.message} (${cause.message})` : error.message;
    }
    return String(error);
}
async function readProblem(response) {
    const text = await response.text().catch(() => "");
    try {
        const parsed = JSON.parse(text);
        if (parsed && typeof parsed === "object")
            return parsed;
    }
    catch {
        // Not JSON (a proxy's page): keep the text as the detail.
    }
    return { status: response.status, title: response.statusText, detail: text.slice(0, 500) };
}
