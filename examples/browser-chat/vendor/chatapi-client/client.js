import { Http, randomId } from "./http.js";
import { CursorList } from "./pagination.js";
import { RealtimeClient } from "./realtime/realtime.js";
const enc = encodeURIComponent;
function paged(http, path, params = {}) {
    return new CursorList((cursor) => http.request("GET", path, { query: { ...params, cursor } }));
}
/** The REST API: one object per area, every list a `CursorList` (`for await`). */
export class ChatAPI {
    http;
    constructor(options) {
        this.http = new Http(options);
    }
    /** The tenant (master key). */
    clients = {
        me: () => this.http.request("GET", "/clients/me"),
        update: (body) => this.http.request("PATCH", "/clients/me", { body }),
    };
    users = {
        /** Upsert on `external_id`. */
        upsert: (body) => this.http.request("POST", "/users", { body, idempotent: !!body.external_id }),
        list: (params) => paged(this.http, "/users", params),
        get: (id) => this.http.request("GET", `/users/${enc(id)}`),
        update: (id, body) => this.http.request("PATCH", `/users/${enc(id)}`, { body }),
        delete: (id) => this.http.request("DELETE", `/users/${enc(id)}`),
        notifications: (id, params) => paged(this.http, `/users/${enc(id)}/notifications`, params),
        preferences: (id) => this.http.request("GET", `/users/${enc(id)}/preferences`),
        replacePreferences: (id, body) => this.http.request("PUT", `/users/${enc(id)}/preferences`, { body }),
    };
    auth = {
        /** A user key; with `device_id` only that device's earlier key is revoked. */
        login: (body) => this.http.request("POST", "/auth/login", { body }),
        /** Revokes the presented (user) key. */
        logout: () => this.http.request("POST", "/auth/logout"),
        /** A short-lived, single-use token that only opens a socket: hand this to a browser. */
        connectToken: (body = {}) => this.http.request("POST", "/auth/connect-token", { body }),
        me: () => this.http.request("GET", "/auth/me"),
    };
    keys = {
        list: (params) => paged(this.http, "/keys", params),
        revoke: (id) => this.http.request("DELETE", `/keys/${enc(id)}`),
    };
    rooms = {
        create: (body) => this.http.request("POST", "/rooms", { body }),
        list: (params) => paged(this.http, "/rooms", params),
        listAll: (params) => paged(this.http, "/rooms/all", params),
        get: (id) => this.http.request("GET", `/rooms/${enc(id)}`),
        update: (id, body) => this.http.request("PATCH", `/rooms/${enc(id)}`, { body }),
        delete: (id) => this.http.request("DELETE", `/rooms/${enc(id)}`),
        members: (id, params) => paged(this.http, `/rooms/${enc(id)}/members`, params),
        addMembers: (id, userIds) => this.http.request("POST", `/rooms/${enc(id)}/members`, {
            body: { user_ids: userIds },
            idempotent: true,
        }),
        removeMember: (id, userId) => this.http.request("DELETE", `/rooms/${enc(id)}/members/${enc(userId)}`),
        markRead: (id, seq) => this.http.request("POST", `/rooms/${enc(id)}/read`, {
            body: { seq },
            idempotent: true,
        }),
    };
    messages = {
        /** Sends with a `client_message_id` (a UUID unless given), so a retry stores it once. */
        send: (roomId, body) => {
            const input = typeof body === "string" ? { content: body } : body;
            return this.http.request("POST", `/rooms/${enc(roomId)}/messages`, {
                body: { ...input, client_message_id: input.client_message_id ?? randomId() },
                idempotent: true,
            });
        },
        /** One page: newest first, or oldest first with `after_seq`. */
        page: (roomId, params = {}) => this.http.request("GET", `/rooms/${enc(roomId)}/messages`, { query: params }),
        /** Every message after `afterSeq` (default 0), oldest first. */
        iterate: async function* (roomId, options = {}) {
            let after = options.afterSeq ?? 0;
            for (;;) {
                const page = await this.messages.page(roomId, {
                    after_seq: after,
                    limit: options.pageSize ?? 200,
                });
                for (const message of page.data) {
                    after = message.seq;
                    yield message;
                }
                if (!page.has_more || page.data.length === 0)
                    return;
            }
        }.bind(this),
        update: (roomId, id, body) => this.http.request("PATCH", `/rooms/${enc(roomId)}/messages/${enc(id)}`, { body }),
        delete: (roomId, id) => this.http.request("DELETE", `/rooms/${enc(roomId)}/messages/${enc(id)}`),
    };
    notifications = {
        /** 202 once stored; the `Idempotency-Key` (a UUID unless given) makes retries safe. */
        send: (body) => {
            const key = body.idempotency_key ?? randomId();
            return this.http.request("POST", "/notifications/send", {
                body: { ...body, idempotency_key: key },
                idempotencyKey: key,
            });
        },
        list: (params) => paged(this.http, "/notifications", params),
        get: (id) => this.http.request("GET", `/notifications/${enc(id)}`),
        attempts: (id) => this.http.request("GET", `/notifications/${enc(id)}/attempts`),
        retry: (id) => this.http.request("POST", `/notifications/${enc(id)}/retry`, {
            idempotent: true,
        }),
        cancel: (id) => this.http.request("POST", `/notifications/${enc(id)}/cancel`, {
            idempotent: true,
        }),
    };
    webhookEndpoints = {
        create: (body) => this.http.request("POST", "/webhook-endpoints", { body }),
        list: (params) => paged(this.http, "/webhook-endpoints", params),
        get: (id) => this.http.request("GET", `/webhook-endpoints/${enc(id)}`),
        update: (id, body) => this.http.request("PATCH", `/webhook-endpoints/${enc(id)}`, { body }),
        delete: (id) => this.http.request("DELETE", `/webhook-endpoints/${enc(id)}`),
        rotateSecret: (id, graceSeconds) => this.http.request("POST", `/webhook-endpoints/${enc(id)}/rotate-secret`, {
            body: graceSeconds === undefined ? {} : { grace_seconds: graceSeconds },
        }),
    };
    /** The user key's own inbox and preferences. */
    inbox = {
        list: (params) => paged(this.http, "/me/notifications", params),
        count: () => this.http.request("GET", "/me/notifications/count"),
        mark: (id, state) => this.http.request("POST", `/me/notifications/${enc(id)}/${state}`, {
            idempotent: true,
        }),
        read: (id) => this.inbox.mark(id, "read"),
        readAll: () => this.http.request("POST", "/me/notifications/read-all", { idempotent: true }),
        archiveRead: () => this.http.request("POST", "/me/notifications/archive-read", { idempotent: true }),
        preferences: () => this.http.request("GET", "/me/preferences"),
        replacePreferences: (body) => this.http.request("PUT", "/me/preferences", { body }),
    };
    /** A realtime connection with this client's key (or `options.token` for connect tokens). */
    realtime(options = {}) {
        return new RealtimeClient({
            baseUrl: this.http.origin,
            apiKey: options.token ? undefined : this.http.apiKey,
            ...options,
        });
    }
}
