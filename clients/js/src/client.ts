import { type ClientOptions, Http, type Query, randomId } from "./http.js";
import { CursorList, type Page } from "./pagination.js";
import { RealtimeClient, type RealtimeOptions } from "./realtime/realtime.js";
import type * as T from "./types.js";

type ListParams = Query & { limit?: number };

const enc = encodeURIComponent;

function paged<I>(http: Http, path: string, params: ListParams = {}): CursorList<I> {
  return new CursorList<I>((cursor) =>
    http.request<Page<I>>("GET", path, { query: { ...params, cursor } }),
  );
}

/** The REST API: one object per area, every list a `CursorList` (`for await`). */
export class ChatAPI {
  readonly http: Http;

  constructor(options: ClientOptions) {
    this.http = new Http(options);
  }

  /** The tenant (master key). */
  readonly clients = {
    me: () => this.http.request<T.ClientInfo>("GET", "/clients/me"),
    update: (body: T.Json) => this.http.request<T.ClientInfo>("PATCH", "/clients/me", { body }),
  };

  readonly users = {
    /** Upsert on `external_id`. */
    upsert: (body: T.UserInput) =>
      this.http.request<T.User>("POST", "/users", { body, idempotent: !!body.external_id }),
    list: (params?: ListParams) => paged<T.User>(this.http, "/users", params),
    get: (id: string) => this.http.request<T.User>("GET", `/users/${enc(id)}`),
    update: (id: string, body: T.UserInput) =>
      this.http.request<T.User>("PATCH", `/users/${enc(id)}`, { body }),
    delete: (id: string) => this.http.request<void>("DELETE", `/users/${enc(id)}`),
    notifications: (id: string, params?: ListParams) =>
      paged<T.InboxItem>(this.http, `/users/${enc(id)}/notifications`, params),
    preferences: (id: string) =>
      this.http.request<T.Preferences>("GET", `/users/${enc(id)}/preferences`),
    replacePreferences: (id: string, body: T.Preferences) =>
      this.http.request<T.Preferences>("PUT", `/users/${enc(id)}/preferences`, { body }),
  };

  readonly auth = {
    /** A user key; with `device_id` only that device's earlier key is revoked. */
    login: (body: T.LoginInput) => this.http.request<T.Login>("POST", "/auth/login", { body }),
    /** Revokes the presented (user) key. */
    logout: () => this.http.request<void>("POST", "/auth/logout"),
    /** A short-lived, single-use token that only opens a socket: hand this to a browser. */
    connectToken: (body: { user_id?: string } = {}) =>
      this.http.request<T.ConnectToken>("POST", "/auth/connect-token", { body }),
    me: () => this.http.request<T.Json>("GET", "/auth/me"),
  };

  readonly keys = {
    list: (params?: ListParams) => paged<T.ApiKeyInfo>(this.http, "/keys", params),
    revoke: (id: string) => this.http.request<void>("DELETE", `/keys/${enc(id)}`),
  };

  readonly rooms = {
    create: (body: T.RoomInput) => this.http.request<T.Room>("POST", "/rooms", { body }),
    list: (params?: ListParams & { type?: T.RoomType; is_active?: boolean }) =>
      paged<T.Room>(this.http, "/rooms", params),
    listAll: (params?: ListParams & { type?: T.RoomType; is_active?: boolean }) =>
      paged<T.Room>(this.http, "/rooms/all", params),
    get: (id: string) => this.http.request<T.Room>("GET", `/rooms/${enc(id)}`),
    update: (id: string, body: { name?: string; metadata?: T.Json }) =>
      this.http.request<T.Room>("PATCH", `/rooms/${enc(id)}`, { body }),
    delete: (id: string) => this.http.request<void>("DELETE", `/rooms/${enc(id)}`),
    members: (id: string, params?: ListParams) =>
      paged<T.Member>(this.http, `/rooms/${enc(id)}/members`, params),
    addMembers: (id: string, userIds: string[]) =>
      this.http.request<T.Room>("POST", `/rooms/${enc(id)}/members`, {
        body: { user_ids: userIds },
        idempotent: true,
      }),
    removeMember: (id: string, userId: string) =>
      this.http.request<void>("DELETE", `/rooms/${enc(id)}/members/${enc(userId)}`),
    markRead: (id: string, seq: number) =>
      this.http.request<T.Json>("POST", `/rooms/${enc(id)}/read`, {
        body: { seq },
        idempotent: true,
      }),
  };

  readonly messages = {
    /** Sends with a `client_message_id` (a UUID unless given), so a retry stores it once. */
    send: (roomId: string, body: T.MessageInput | string) => {
      const input = typeof body === "string" ? { content: body } : body;
      return this.http.request<T.Message>("POST", `/rooms/${enc(roomId)}/messages`, {
        body: { ...input, client_message_id: input.client_message_id ?? randomId() },
        idempotent: true,
      });
    },
    /** One page: newest first, or oldest first with `after_seq`. */
    page: (roomId: string, params: { limit?: number; before_seq?: number; after_seq?: number } = {}) =>
      this.http.request<{ data: T.Message[]; has_more: boolean }>(
        "GET",
        `/rooms/${enc(roomId)}/messages`,
        { query: params },
      ),
    /** Every message after `afterSeq` (default 0), oldest first. */
    iterate: async function* (
      this: ChatAPI,
      roomId: string,
      options: { afterSeq?: number; pageSize?: number } = {},
    ): AsyncGenerator<T.Message> {
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
        if (!page.has_more || page.data.length === 0) return;
      }
    }.bind(this) as (
      roomId: string,
      options?: { afterSeq?: number; pageSize?: number },
    ) => AsyncGenerator<T.Message>,
    update: (roomId: string, id: string, body: { content?: string; metadata?: T.Json }) =>
      this.http.request<T.Message>("PATCH", `/rooms/${enc(roomId)}/messages/${enc(id)}`, { body }),
    delete: (roomId: string, id: string) =>
      this.http.request<T.Message>("DELETE", `/rooms/${enc(roomId)}/messages/${enc(id)}`),
  };

  readonly notifications = {
    /** 202 once stored; the `Idempotency-Key` (a UUID unless given) makes retries safe. */
    send: (body: T.NotificationInput) => {
      const key = body.idempotency_key ?? randomId();
      return this.http.request<T.Notification>("POST", "/notifications/send", {
        body: { ...body, idempotency_key: key },
        idempotencyKey: key,
      });
    },
    list: (params?: ListParams & { status?: string; channel?: string }) =>
      paged<T.Notification>(this.http, "/notifications", params),
    get: (id: string) => this.http.request<T.Notification>("GET", `/notifications/${enc(id)}`),
    attempts: (id: string) =>
      this.http.request<T.Json>("GET", `/notifications/${enc(id)}/attempts`),
    retry: (id: string) =>
      this.http.request<T.Notification>("POST", `/notifications/${enc(id)}/retry`, {
        idempotent: true,
      }),
    cancel: (id: string) =>
      this.http.request<T.Notification>("POST", `/notifications/${enc(id)}/cancel`, {
        idempotent: true,
      }),
  };

  readonly webhookEndpoints = {
    create: (body: { url: string; description?: string; event_types?: string[] }) =>
      this.http.request<T.WebhookEndpoint>("POST", "/webhook-endpoints", { body }),
    list: (params?: ListParams) => paged<T.WebhookEndpoint>(this.http, "/webhook-endpoints", params),
    get: (id: string) => this.http.request<T.WebhookEndpoint>("GET", `/webhook-endpoints/${enc(id)}`),
    update: (id: string, body: T.Json) =>
      this.http.request<T.WebhookEndpoint>("PATCH", `/webhook-endpoints/${enc(id)}`, { body }),
    delete: (id: string) => this.http.request<void>("DELETE", `/webhook-endpoints/${enc(id)}`),
    rotateSecret: (id: string, graceSeconds?: number) =>
      this.http.request<T.WebhookEndpoint>("POST", `/webhook-endpoints/${enc(id)}/rotate-secret`, {
        body: graceSeconds === undefined ? {} : { grace_seconds: graceSeconds },
      }),
  };

  /** The user key's own inbox and preferences. */
  readonly inbox = {
    list: (params?: ListParams & { read?: boolean; seen?: boolean; archived?: boolean; event?: string }) =>
      paged<T.InboxItem>(this.http, "/me/notifications", params),
    count: () => this.http.request<T.InboxCount>("GET", "/me/notifications/count"),
    mark: (id: string, state: "read" | "unread" | "seen" | "archive" | "unarchive") =>
      this.http.request<T.InboxItem>("POST", `/me/notifications/${enc(id)}/${state}`, {
        idempotent: true,
      }),
    read: (id: string) => this.inbox.mark(id, "read"),
    readAll: () =>
      this.http.request<T.Json>("POST", "/me/notifications/read-all", { idempotent: true }),
    archiveRead: () =>
      this.http.request<T.Json>("POST", "/me/notifications/archive-read", { idempotent: true }),
    preferences: () => this.http.request<T.Preferences>("GET", "/me/preferences"),
    replacePreferences: (body: T.Preferences) =>
      this.http.request<T.Preferences>("PUT", "/me/preferences", { body }),
  };

  /** A realtime connection with this client's key (or `options.token` for connect tokens). */
  realtime(options: Partial<RealtimeOptions> = {}): RealtimeClient {
    return new RealtimeClient({
      baseUrl: this.http.origin,
      apiKey: options.token ? undefined : this.http.apiKey,
      ...options,
    });
  }
}
