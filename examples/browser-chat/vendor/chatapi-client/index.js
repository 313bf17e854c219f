export { ChatAPI } from "./client.js";
export { ChatAPIConnectionError, ChatAPIError } from "./errors.js";
export { Http, parseRetryAfter } from "./http.js";
export { CursorList } from "./pagination.js";
export { RealtimeClient } from "./realtime/realtime.js";
export * from "./types.js";
export { verifyWebhook, WebhookVerificationError } from "./webhooks.js";
