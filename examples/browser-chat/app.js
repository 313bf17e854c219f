// ChatAPI browser demo on @chatapi/client: a chat client in plain JavaScript, no framework,
// no bundler. REST goes through `ChatAPI` (user key; problems arrive as ChatAPIError) and
// live events through its realtime client over Socket.IO, which reconnects and recovers
// missed messages by `sync` per room, once each and in order. Only the key comes from the
// demo's own backend (POST /demo/session), which logs a demo user in server-side; the page
// never sees a master key. Everything is rendered with textContent: never HTML.
// vendor/chatapi-client/ is clients/js's build (`npm run vendor-example` there).
import { ChatAPI } from "./vendor/chatapi-client/index.js";

const state = {
  key: null, // this user's key (memory only; a reload signs in again)
  api: null, // ChatAPI with that key
  me: null, // {id, name}
  rooms: new Map(), // room id -> {id, name, unread, lastSeq}
  active: null, // the room on screen
  shown: new Set(), // message ids on screen: a send's ack and its event both arrive
  names: new Map(), // user id -> display name
  typing: new Map(), // user id -> timer that ends its "is typing"
  rt: null, // the realtime client
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

// A problem's `detail` is what the person should read.
function reasonOf(error) {
  return (error.problem && error.problem.detail) || error.message;
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
    state.api = new ChatAPI({ baseUrl: location.origin, apiKey: session.api_key });
    state.me = { id: session.user_id, name: session.display_name };
    state.names.set(session.user_id, session.display_name);
    localStorage.setItem("chatapi-demo-name", session.display_name);
    // Rooms first: their last_seq is where the realtime client starts, and it syncs
    // each room from there, so nothing sent meanwhile is missed.
    await Promise.all([loadRooms(), loadInbox()]);
    await connect();
    $("me").textContent = session.display_name;
    $("login").hidden = true;
    $("chat").hidden = false;
    await openRoom(session.rooms[0].id);
  } catch (error) {
    if (state.rt) state.rt.close();
    $("login-error").textContent = reasonOf(error);
  }
}

// ---- rooms, messages, unread counts ------------------------------------------------

async function loadRooms() {
  for await (const room of state.api.rooms.list({ limit: 50 })) {
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
  const page = await state.api.messages.page(roomId, { limit: 50 });
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
  if (seq > 0) state.rt.request("read", { room_id: room.id, seq }).catch(() => undefined);
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
  // The client adds a client_message_id, so a resend is stored once.
  state.rt
    .send(state.active, content)
    .then(onMessage)
    .catch((error) => toast("Not sent", reasonOf(error), "error"));
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
  state.rt.request("typing", { room_id: state.active }).catch(() => undefined);
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
    state.api.inbox.list({ limit: 20, archived: false }).first(),
    state.api.inbox.count(),
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
    await state.api.inbox.read(item.id);
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
  renderCount(await state.api.inbox.readAll());
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
  renderCount(await state.api.inbox.count());
}

function toast(title, body, kind) {
  const node = el("div", "toast " + (kind || ""));
  node.append(el("strong", "", title), el("span", "", body));
  node.addEventListener("click", () => node.remove());
  $("toasts").append(node);
  setTimeout(() => node.remove(), TOAST_SHOWN_MS);
}

// ---- the socket --------------------------------------------------------------------

async function connect() {
  const positions = Object.fromEntries([...state.rooms.values()].map((r) => [r.id, r.lastSeq]));
  // `io` is the Socket.IO browser bundle's global (vendor/socket.io.min.js): no bundler.
  const rt = state.api.realtime({ transport: "socketio", io: window.io, positions });
  state.rt = rt;
  rt.on("message.created", onMessage); // each once, in seq order, across reconnects
  rt.on("typing", onTyping);
  rt.on("notification", onNotification);
  rt.on("notification.count", renderCount);
  rt.on("room.member_joined", ({ room_id: roomId, user_id: userId }) => {
    if (roomId !== state.active || userId === state.me.id) return;
    learnNames([userId]).then(() => addNote(nameOf(userId) + " joined"));
  });
  rt.on("close", ({ code, reason }) => {
    // 4403: the key was revoked, e.g. this name signed in from another tab.
    if (code === 4403) setStatus("signed out: this name signed in elsewhere", "bad");
    else setStatus(reason === "io server disconnect" ? reason : "reconnecting…", "bad");
  });
  rt.on("error", (error) => setStatus("cannot connect: " + reasonOf(error), "bad"));
  rt.on("open", () => {
    setStatus("connected", "ok");
    // The client syncs the missed messages itself; unread counts are re-read.
    if (state.connectedOnce) loadRooms();
    state.connectedOnce = true;
  });
  await rt.connect();
  setStatus("connected", "ok");
}

$("login").addEventListener("submit", signIn);
$("composer").addEventListener("submit", send);
$("message").addEventListener("input", onInput);
$("read-all").addEventListener("click", readAll);
$("name").value = localStorage.getItem("chatapi-demo-name") || "";
