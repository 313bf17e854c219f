// ChatAPI browser demo: a chat client in plain JavaScript, no framework, no build step.
// It uses the API as any client app would: REST under /api/v1 with a user key, and live
// events over Socket.IO at /sockets. Only the key comes from the demo's own backend
// (POST /demo/session), which logs a demo user in server-side; the page never sees a
// master key. Everything is rendered with textContent: message text is never HTML.
"use strict";

const state = {
  key: null, // this user's key (memory only; a reload signs in again)
  me: null, // {id, name}
  rooms: new Map(), // room id -> {id, name, unread, lastSeq}
  active: null, // the room on screen
  shown: new Set(), // message ids on screen: a send's ack and its event both arrive
  names: new Map(), // user id -> display name
  typing: new Map(), // user id -> timer that ends its "is typing"
  socket: null,
  connectedOnce: false,
  typingSentAt: new Map(), // room id -> when our last typing event went out
};
const TYPING_SHOWN_MS = 3000; // the server relays at most one typing event a second
const TOAST_SHOWN_MS = 8000;

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// One REST call with the user key; errors are RFC 9457 problems, whose `detail` we show.
async function api(method, path, body) {
  const response = await fetch("/api/v1" + path, {
    method,
    headers: { Authorization: "Bearer " + state.key, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error(data.detail || response.statusText);
  return data;
}

function newClientMessageId() {
  // Lets the server drop a resent duplicate (crypto.randomUUID needs https off localhost).
  return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 12);
}

function setStatus(text, kind) {
  $("status").textContent = text;
  $("status").className = "status " + (kind || "");
}

// ---- sign in ----------------------------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    const response = await fetch("/demo/session", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ display_name: $("name").value }),
    });
    const session = await response.json();
    if (!response.ok) throw new Error(session.detail);
    state.key = session.api_key;
    state.me = { id: session.user_id, name: session.display_name };
    state.names.set(session.user_id, session.display_name);
    localStorage.setItem("chatapi-demo-name", session.display_name);
    // Socket first: once connected, no event is missed while history loads.
    await connect();
    await Promise.all([loadRooms(), loadInbox()]);
    $("me").textContent = session.display_name;
    $("login").hidden = true;
    $("chat").hidden = false;
    await openRoom(session.rooms[0].id);
  } catch (error) {
    if (state.socket) state.socket.disconnect();
    $("login-error").textContent = error.message;
  }
}

// ---- rooms, messages, unread counts ------------------------------------------------

async function loadRooms() {
  const page = await api("GET", "/rooms?limit=50");
  for (const room of page.data) {
    state.rooms.set(room.id, {
      id: room.id,
      name: room.name || room.id,
      unread: room.unread_count || 0,
      lastSeq: room.last_seq,
    });
    learnNames(room.member_ids || []);
  }
  renderRooms();
}

function renderRooms() {
  const list = $("rooms");
  list.replaceChildren();
  const byName = [...state.rooms.values()].sort((a, b) => a.name.localeCompare(b.name));
  for (const room of byName) {
    const button = el("button", room.id === state.active ? "active" : "", "# " + room.name);
    button.type = "button";
    button.dataset.roomName = room.name;
    button.addEventListener("click", () => openRoom(room.id));
    if (room.unread > 0 && room.id !== state.active) {
      button.append(el("span", "badge", String(room.unread)));
    }
    const item = el("li");
    item.append(button);
    list.append(item);
  }
}

async function openRoom(roomId) {
  state.active = roomId;
  state.shown.clear();
  $("messages").replaceChildren();
  showTyping();
  const room = state.rooms.get(roomId);
  $("room-title").textContent = "# " + room.name;
  renderRooms();
  const page = await api("GET", `/rooms/${roomId}/messages?limit=50`);
  if (state.active !== roomId) return; // another room was opened meanwhile
  await learnNames(page.data.map((m) => m.sender_id));
  page.data.reverse().forEach(addMessage); // the API answers newest first
  markRead(room, Math.max(room.lastSeq, ...page.data.map((m) => m.seq)));
  $("message").focus();
}

// Shows a message of the open room once; false when it was not shown (already, or elsewhere).
function addMessage(message) {
  if (message.room_id !== state.active || state.shown.has(message.id)) return false;
  state.shown.add(message.id);
  const mine = message.sender_id === state.me.id;
  const item = el("li", mine ? "message mine" : "message");
  item.dataset.seq = message.seq;
  const sender = el("span", "sender", nameOf(message.sender_id));
  sender.dataset.user = message.sender_id;
  const at = new Date(message.created_at);
  const time = el("time", "", at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
  item.append(sender, el("span", "content", message.content), time);
  // Keep seq order although an ack and an event may cross.
  const list = $("messages");
  const later = [...list.children].find((node) => Number(node.dataset.seq) > message.seq);
  list.insertBefore(item, later || null);
  list.scrollTop = list.scrollHeight;
  return true;
}

function addNote(text) {
  $("messages").append(el("li", "note", text));
}

// The read marker is what the API's unread_count counts from (last_seq − read_seq).
function markRead(room, seq) {
  room.lastSeq = Math.max(room.lastSeq, seq);
  room.unread = 0;
  renderRooms();
  if (seq > 0) state.socket.emit("read", { room_id: room.id, seq });
}

function onMessage(message) {
  const room = state.rooms.get(message.room_id);
  if (!room) return;
  stopTyping(message.sender_id);
  learnNames([message.sender_id]);
  if (message.room_id === state.active) {
    if (addMessage(message)) markRead(room, message.seq);
  } else if (message.sender_id !== state.me.id && message.seq > room.lastSeq) {
    room.lastSeq = message.seq;
    room.unread += 1;
    renderRooms();
  }
}

function send(event) {
  event.preventDefault();
  const input = $("message");
  const content = input.value.trim();
  if (!content || !state.active) return;
  input.value = "";
  const body = { room_id: state.active, content, client_message_id: newClientMessageId() };
  state.socket.emit("message.send", body, (answer) => {
    if (answer && answer.error) toast("Not sent", answer.error.detail, "error");
    else onMessage(answer);
  });
}

// ---- display names -----------------------------------------------------------------

function nameOf(userId) {
  return state.names.get(userId) || "…";
}

// The API shows users to master keys only; the demo backend names demo users for the page.
async function learnNames(userIds) {
  const unknown = [...new Set(userIds)].filter((id) => id && !state.names.has(id));
  if (unknown.length === 0) return;
  unknown.forEach((id) => state.names.set(id, "…"));
  const response = await fetch("/demo/users?ids=" + unknown.slice(0, 100).join(","), {
    headers: { Authorization: "Bearer " + state.key },
  });
  if (!response.ok) return;
  const { names } = await response.json();
  for (const [id, name] of Object.entries(names)) {
    state.names.set(id, name);
    document.querySelectorAll(`[data-user="${id}"]`).forEach((node) => (node.textContent = name));
  }
  showTyping();
}

// ---- typing indicator --------------------------------------------------------------

// At most one typing event a second per room: the server would drop the others anyway.
function onInput() {
  const now = Date.now();
  if (!state.active || now - (state.typingSentAt.get(state.active) || 0) < 1000) return;
  state.typingSentAt.set(state.active, now);
  state.socket.emit("typing", { room_id: state.active });
}

function onTyping({ room_id: roomId, user_id: userId }) {
  if (roomId !== state.active || userId === state.me.id) return;
  clearTimeout(state.typing.get(userId));
  state.typing.set(userId, setTimeout(() => stopTyping(userId), TYPING_SHOWN_MS));
  learnNames([userId]);
  showTyping();
}

function stopTyping(userId) {
  if (!state.typing.has(userId)) return;
  clearTimeout(state.typing.get(userId));
  state.typing.delete(userId);
  showTyping();
}

function showTyping() {
  if (state.active === null) state.typing.clear();
  const who = [...state.typing.keys()].map(nameOf);
  $("typing").textContent =
    who.length === 0 ? "" : who.join(", ") + (who.length === 1 ? " is typing…" : " are typing…");
}

// ---- inbox and toasts --------------------------------------------------------------

async function loadInbox() {
  const [page, count] = await Promise.all([
    api("GET", "/me/notifications?limit=20&archived=false"),
    api("GET", "/me/notifications/count"),
  ]);
  $("inbox").replaceChildren();
  page.data.reverse().forEach(addInboxItem); // newest on top
  renderCount(count);
}

function titleOf(event, data) {
  return typeof data.title === "string" ? data.title : event;
}

function bodyOf(data) {
  if (typeof data.body === "string") return data.body;
  if (typeof data.text === "string") return data.text;
  return JSON.stringify(data);
}

function addInboxItem(item) {
  // The list and a live `notification` may both bring an item that arrived meanwhile.
  if ($("inbox").querySelector(`[data-id="${item.id}"]`)) return;
  const entry = el("li", item.read_at ? "" : "unread");
  entry.dataset.id = item.id;
  entry.append(el("strong", "", titleOf(item.event, item.data)), el("span", "", bodyOf(item.data)));
  entry.title = "Click to mark read";
  entry.addEventListener("click", async () => {
    await api("POST", `/me/notifications/${item.id}/read`);
    entry.className = ""; // the new counts arrive as `notification.count`
  });
  $("inbox").prepend(entry);
  $("inbox-empty").hidden = true;
}

function renderCount({ unread }) {
  $("inbox-count").textContent = String(unread);
  $("inbox-count").hidden = unread === 0;
}

async function readAll() {
  renderCount(await api("POST", "/me/notifications/read-all"));
  document.querySelectorAll("#inbox li").forEach((node) => (node.className = ""));
}

// `notification` carries {event, data, notification_id, inbox_id}: a new inbox item.
async function onNotification(notification) {
  toast(titleOf(notification.event, notification.data), bodyOf(notification.data));
  addInboxItem({
    id: notification.inbox_id,
    event: notification.event,
    data: notification.data,
    read_at: null,
  });
  renderCount(await api("GET", "/me/notifications/count"));
}

function toast(title, body, kind) {
  const node = el("div", "toast " + (kind || ""));
  node.append(el("strong", "", title), el("span", "", body));
  node.addEventListener("click", () => node.remove());
  $("toasts").append(node);
  setTimeout(() => node.remove(), TOAST_SHOWN_MS);
}

// ---- the socket --------------------------------------------------------------------

function connect() {
  const socket = io({
    path: "/sockets",
    auth: { api_key: state.key },
    transports: ["websocket", "polling"],
  });
  state.socket = socket;
  socket.on("message.created", onMessage);
  socket.on("typing", onTyping);
  socket.on("notification", onNotification);
  socket.on("notification.count", renderCount);
  socket.on("room.member_joined", ({ room_id: roomId, user_id: userId }) => {
    if (roomId !== state.active || userId === state.me.id) return;
    learnNames([userId]).then(() => addNote(nameOf(userId) + " joined"));
  });
  socket.on("disconnect_reason", ({ code, reason }) => {
    // 4403: the key was revoked, e.g. this name signed in from another tab.
    setStatus(code === 4403 ? "signed out: this name signed in elsewhere" : reason, "bad");
  });
  socket.on("disconnect", (reason) => {
    if (reason !== "io server disconnect") setStatus("reconnecting…", "bad");
  });
  socket.on("connect_error", (error) => setStatus("cannot connect: " + error.message, "bad"));
  return new Promise((resolve) => {
    socket.on("connect", () => {
      setStatus("connected", "ok");
      if (state.connectedOnce) catchUp();
      state.connectedOnce = true;
      resolve();
    });
  });
}

// After a reconnect: the messages missed in the open room (sync from the last seq shown),
// and fresh unread counts for the others.
function catchUp() {
  const room = state.rooms.get(state.active);
  if (room) {
    state.socket.emit("sync", { room_id: room.id, after_seq: room.lastSeq }, (answer) => {
      if (answer && answer.messages) answer.messages.forEach(onMessage);
    });
  }
  loadRooms();
}

$("login").addEventListener("submit", signIn);
$("composer").addEventListener("submit", send);
$("message").addEventListener("input", onInput);
$("read-all").addEventListener("click", readAll);
$("name").value = localStorage.getItem("chatapi-demo-name") || "";
