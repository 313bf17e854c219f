/** Shapes of the API's answers (docs/api.md); unknown extra fields pass through. */
export type Json = Record<string, unknown>;

export interface ClientInfo {
  id: string;
  name: string;
  slug: string;
  settings: Json;
  created_at: string;
}

export interface User {
  id: string;
  external_id: string | null;
  display_name: string | null;
  email: string | null;
  metadata: Json;
  created_at: string;
  updated_at: string;
}

export interface UserInput {
  external_id?: string;
  display_name?: string;
  email?: string;
  metadata?: Json;
}

export interface Login {
  api_key: string;
  user: User;
  scopes: string[];
  expires_at: string | null;
  device_id?: string;
}

export interface LoginInput {
  user_id?: string;
  external_id?: string;
  scopes?: string[];
  ttl_seconds?: number;
  /** Rotates only this device's key (server support: issue #24's devices). */
  device_id?: string;
}

export interface ConnectToken {
  token: string;
  expires_at: string;
}

export type RoomType = "support" | "group" | "direct" | "channel";

export interface Room {
  id: string;
  name: string | null;
  type: RoomType;
  is_active: boolean;
  member_ids: string[] | null;
  member_count?: number;
  metadata: Json;
  last_seq?: number;
  unread_count?: number;
  created_at: string;
  [extra: string]: unknown;
}

export interface RoomInput {
  name?: string;
  type?: RoomType;
  member_ids?: string[];
  metadata?: Json;
}

export interface Member {
  user_id: string;
  role: string;
  joined_at: string;
  read_seq: number;
}

export interface Message {
  id: string;
  room_id: string;
  seq: number;
  sender_id: string | null;
  content: string;
  content_type: string;
  metadata: Json;
  client_message_id: string | null;
  created_at: string;
  edited_at: string | null;
  deleted_at: string | null;
}

export interface MessageInput {
  content: string;
  content_type?: string;
  metadata?: Json;
  /** Set automatically (a UUID) so that a retried send is stored once. */
  client_message_id?: string;
}

export interface Delivery {
  id: string;
  channel: string;
  recipient: Json;
  status: string;
  attempts: number;
  last_error: string | null;
  delivered_at: string | null;
  next_attempt_at: string | null;
}

export interface Notification {
  id: string;
  status: string;
  channels: string[];
  created_at: string;
  deliveries?: Delivery[];
  [extra: string]: unknown;
}

export interface NotificationInput {
  channels: string[];
  recipients: Json[];
  websocket?: { event: string; data?: Json };
  email?: Json;
  webhook?: { endpoint_ids?: string[]; event_type: string; payload: Json };
  /** Set automatically (a UUID) unless given: the header and the field. */
  idempotency_key?: string;
  send_at?: string;
  critical?: boolean;
  metadata?: Json;
}

export interface WebhookEndpoint {
  id: string;
  url: string;
  description: string | null;
  event_types: string[] | null;
  disabled: boolean;
  /** Only in the answers of creation and rotation. */
  secret?: string;
  [extra: string]: unknown;
}

export interface InboxItem {
  id: string;
  event: string;
  data: Json;
  read_at: string | null;
  seen_at: string | null;
  archived_at: string | null;
  created_at: string;
  [extra: string]: unknown;
}

export interface InboxCount {
  unread: number;
  unseen: number;
  total: number;
}

export interface Preferences {
  channels?: Record<string, boolean>;
  events?: Record<string, Record<string, boolean>>;
}

export interface ApiKeyInfo {
  id: string;
  kind: string;
  user_id: string | null;
  scopes: string[];
  created_at: string;
  last_used_at: string | null;
  expires_at: string | null;
  revoked_at: string | null;
  [extra: string]: unknown;
}
