export { ChatAPI } from "./client.js";
export { ChatAPIConnectionError, ChatAPIError, type Problem } from "./errors.js";
export { type ClientOptions, type FetchLike, Http, parseRetryAfter } from "./http.js";
export { CursorList, type Page } from "./pagination.js";
export { RealtimeClient, type RealtimeOptions } from "./realtime/realtime.js";
export type { IoFactory } from "./realtime/socketio.js";
export type { WebSocketCtor, WebSocketLike } from "./realtime/websocket.js";
export * from "./types.js";
export { type HeaderSource, verifyWebhook, WebhookVerificationError } from "./webhooks.js";
