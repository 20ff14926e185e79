// The chat page: a client of the messenger protocol (docs/protocol.md) like any other, over REST
// with the session cookie and the websocket /ws/v1/.
//
// Delivery, as the protocol asks: every message is kept by (conversation, seq), so a replay or a
// duplicate changes nothing on screen; each conversation tracks `held`, the highest seq this page
// holds with no gap below it, which is what it acknowledges (`ack`) and, while the conversation is
// open and visible, marks read (`read`); a gap is filled from history (`after_seq`). Own messages
// appear at once as pending under a client_id, settle on `message.sent`, and a failed one is
// retried with the same client_id. After a reconnect the list is refetched and the open
// conversation caught up with `after_seq`.
//
// Replies: a message may quote an earlier one (`reply_to`, its seq). The quote shows what this page
// holds of it, or what one `after_seq=seq-1&limit=1` fetched (kept apart from the loaded history in
// `quoted`, so that history stays one unbroken run of seqs); clicking it scrolls to the original,
// loading older history back to it first.
//
// Edits: my own text message may be edited for a while after sending it (`boot.edit_seconds`), in
// the composer under an "Editing message" bar, saved with PATCH. The members hear of an edit by a
// `message_edited` notice, which is not shown and carries no text: a page holding an older copy of
// the message (or of a quote of it) fetches it again, and an older copy arriving late does not
// undo the edit.
//
// Reactions: React beside a bubble opens six emojis; a click reacts (PUT), a click on mine takes it
// away (DELETE). Each message keeps its `reactions` as the server lists them (history), changed in
// place by `message.reaction` events; a chip under the bubble groups them by emoji.

import { Api, ApiError } from "./api.js";
import { Connection } from "./connection.js";
import { append, avatar, clear, h, hydrateIcons, icon, ticks } from "./dom.js";
import { Drafts } from "./drafts.js";
import * as fmt from "./format.js";
import * as notifications from "./notifications.js";

const boot = JSON.parse(document.getElementById("boot").textContent);
const me = boot.me;
const api = new Api(boot.api);
const conn = new Connection(boot.websocket);
const drafts = new Drafts(me.id);

const SEND_TIMEOUT_MS = 10000;
// How long after sending it a message of mine may be edited (MESSENGER_EDIT_SECONDS).
const EDIT_SECONDS = boot.edit_seconds || 900;
// Refusals of a send that mean "not now" (protocol.md): too many messages for the moment, no
// database connection free, the members changed under it. Sent again by itself up to MAX_RESENDS
// times; any other error is shown at once.
const NOT_NOW = new Set(["rate_limited", "busy", "conflict"]);
const MAX_RESENDS = 5;
const TYPING_SEND_EVERY_MS = 3000;
const TYPING_SHOW_MS = 5000;
const PAGE = 50;
// Notices after which the conversation is fetched again: its members, their roles or its photo changed.
const MEMBER_ACTIONS = new Set(["group_created", "member_added", "member_removed", "member_left", "admin_added", "admin_removed", "group_photo_changed"]);
const REMOVED_TEXT = "This message was removed by a moderator";
const REMOVAL_NOTICES = new Set(["message_removed", "message_deleted"]);
const STATUS_RANK = { sent: 0, delivered: 1, read: 2 };

const state = {
  conversations: new Map(),
  fetching: new Map(), // conversation id -> promise of its first fetch
  gone: new Set(), // ids of conversations this user cannot see (404): deleted from their list
  users: new Map(), // user id -> {id, phone_number, display_name, about, is_business, online, last_seen}
  contacts: [],
  blocked: new Set(boot.blocked),
  openId: null,
  filter: "",
  unblockError: null, // {userId, message}: why the composer notice's Unblock failed
  deleteError: null, // {id, message}: why deleting a left group failed
  confirmDeleteChat: null, // the id of the left group whose deletion is being asked about
};

const $ = (id) => document.getElementById(id);
const els = {
  banner: $("connection-banner"),
  chatList: $("chat-list"),
  chatListEmpty: $("chat-list-empty"),
  chatListNoMatch: $("chat-list-no-match"),
  notifyOffer: $("notify-offer"),
  filter: $("chat-filter"),
  welcome: $("chat-welcome"),
  conversation: $("conversation"),
  title: $("conversation-title"),
  subtitle: $("conversation-subtitle"),
  headerAvatar: $("conversation-avatar"),
  headerBadge: $("conversation-badge"),
  messages: $("messages"),
  messagesInner: $("messages-inner"),
  composer: $("composer"),
  input: $("composer-input"),
  composerNotice: $("composer-notice"),
  sideDrawer: $("side-drawer"),
  infoDrawer: $("info-drawer"),
  searchDrawer: $("search-drawer"),
  profileButton: $("open-profile"),
  attachPanel: $("attach-panel"),
  replyBar: $("reply-bar"),
  editBar: $("edit-bar"),
  attachButton: $("attach-button"),
  attachInput: $("attach-input"),
  recordButton: $("record-button"),
};

// --- small helpers ------------------------------------------------------------------------

function uuid4() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const time = (iso) => (iso ? Date.parse(iso) : 0);
const maxStatus = (a, b) => ((STATUS_RANK[a] ?? -1) >= (STATUS_RANK[b] ?? -1) ? a : b);

function rememberUser(user, extra = {}) {
  const known = state.users.get(user.id) || {};
  const merged = { ...known, ...user, ...extra };
  state.users.set(user.id, merged);
  return merged;
}

function contactOf(userId) {
  return state.contacts.find((c) => c.user.id === userId) || null;
}

function nameOf(userId) {
  if (userId === me.id) return "You";
  const contact = contactOf(userId);
  if (contact && contact.name) return contact.name;
  const user = state.users.get(userId);
  return (user && (user.display_name || user.phone_number)) || "Someone";
}

function isBusiness(userId) {
  const user = state.users.get(userId);
  return Boolean(user && user.is_business);
}

/** The "business" badge beside the name of a developer app's account (is_business), else null. */
function businessBadge(userId) {
  if (userId === me.id || !isBusiness(userId)) return null;
  return h("span", { class: "business-badge", title: "Business account: the messaging account of an app", text: "Business" });
}

function peerOf(c) {
  if (c.kind !== "direct") return null;
  const member = c.members.find((m) => m.user.id !== me.id);
  return member ? state.users.get(member.user.id) || member.user : null;
}

/** Someone's profile photo ({id, url, thumbnail_url}) as last heard of, or null. */
function photoOf(userId) {
  if (userId === me.id) return me.photo || null;
  const user = state.users.get(userId);
  return (user && user.photo) || null;
}

/** A conversation's avatar: a group's photo, or the other person's in a direct chat. */
function conversationAvatar(c, options = {}) {
  const peer = peerOf(c);
  const group = c.kind === "group";
  return avatar(titleOf(c), { id: group ? c.id : (peer || {}).id, group, photo: group ? c.photo : peer && photoOf(peer.id), ...options });
}

function titleOf(c) {
  if (c.kind === "direct") {
    const peer = peerOf(c);
    if (peer) return nameOf(peer.id);
  }
  return c.title || "Conversation";
}

function isVisible() {
  return document.visibilityState === "visible";
}

/** Muted by me (docs/protocol.md): no notification, and out of the tab title's count. */
function isMuted(c) {
  return c.muted && (!c.muted_until || time(c.muted_until) > Date.now());
}

function setMuted(c, { muted, muted_until }) {
  c.muted = Boolean(muted);
  c.muted_until = muted ? muted_until || null : null;
  clearTimeout(c.muteEnds);
  // A mute whose time is up ends here as on the server, which tells nobody: the list shows it then.
  const left = c.muted_until ? time(c.muted_until) - Date.now() : 0;
  if (left > 0 && left < 2 ** 31 - 1) c.muteEnds = setTimeout(() => renderConversationEverywhere(c, { messages: false }), left + 50);
}

/** `conversation.muted` or `conversation.pinned`: a setting of mine changed on some device. */
function onOwnSetting(ev, apply) {
  const c = state.conversations.get(ev.conversation);
  if (!c) return;
  apply(c);
  renderConversationEverywhere(c, { messages: false });
  if (isOpen(c) && !els.infoDrawer.hidden) refreshInfo(c);
}

function isOpen(c) {
  return state.openId === c.id;
}

function openChat() {
  return state.conversations.get(state.openId) || null;
}

/** What the chat shows above my read mark: not the notices of edits and deletions (docs/protocol.md),
 * whether this page has seen them (by seq) or the server counted them in its last summary of the
 * chat (`unread_count`, seqs unknown), which holds while my mark has not moved since. */
function unreadOf(c) {
  const mark = Math.max(c.read_seq, c.readSent);
  let hidden = 0;
  let from = mark;
  if (c.summarized && c.summarized.read_seq === mark) {
    hidden += c.summarized.hidden;
    from = Math.max(from, c.summarized.last_seq);
  }
  for (const seq of c.hiddenSeqs) if (seq > from) hidden += 1;
  return Math.max(0, c.last_seq - mark - hidden);
}

function minKey(map) {
  let low = Infinity;
  for (const key of map.keys()) if (key < low) low = key;
  return low;
}

function maxKey(map) {
  let high = -Infinity;
  for (const key of map.keys()) if (key > high) high = key;
  return high;
}

function errorText(exc) {
  return exc instanceof ApiError ? exc.message : "Something went wrong; please try again.";
}

// --- the model: conversations and messages ---------------------------------------------------

function upsertConversation(p) {
  let c = state.conversations.get(p.id);
  if (!c) {
    c = {
      id: p.id, msgs: new Map(), pending: new Map(), typing: new Map(), removed: new Map(), deleteErrors: new Map(), reactingTo: null, reactionErrors: new Map(),
      held: p.delivered_seq, ackSent: p.delivered_seq, readSent: p.read_seq,
      last_seq: 0, read_seq: 0, delivered_seq: 0, last_message: null, last_activity_at: null,
      loaded: false, hasMoreBefore: true, left: false, draft: drafts.get(p.id), staged: null, members: [],
      lastTypingSent: 0, // when this page last told the others in it that I am typing
      replyTo: null, // the seq of the message the composer's next message quotes
      quoted: new Map(), // seq -> a quoted message fetched on its own (null: not one this user can see)
      quoting: new Set(), // seqs of quoted messages being fetched
      editing: null, // {seq, before, saving, error}: my message being edited in the composer; before: what it held
      refetching: new Map(), // seq -> whether to fetch it again once this fetch ends (edited meanwhile)
      hiddenSeqs: new Set(), // seqs of notices of edits and deletions above my read mark: not unread
      summarized: null, // {read_seq, last_seq, hidden}: the hidden notices of the server's last unread_count
    };
    state.conversations.set(p.id, c);
  }
  if (c.left && !p.left) {
    // Added back to a group I had left: its history starts again at my return (docs/protocol.md),
    // so what this page held of it before is no longer what the server pages through.
    c.msgs.clear();
    c.loaded = false;
    c.hasMoreBefore = true;
    c.held = p.delivered_seq;
    c.ackSent = p.delivered_seq;
  }
  c.kind = p.kind;
  c.title = p.title;
  c.photo = p.photo || null;
  c.role = p.role;
  // A group I left or was removed from: read-only, as it was when I went (title, members, history).
  c.left = Boolean(p.left);
  c.last_seq = Math.max(c.last_seq, p.last_seq);
  c.read_seq = Math.max(c.read_seq, p.read_seq);
  c.summarized = { read_seq: p.read_seq, last_seq: p.last_seq, hidden: p.last_seq - p.read_seq - p.unread_count };
  setMuted(c, p);
  c.pinned_at = p.pinned_at || null;
  c.delivered_seq = Math.max(c.delivered_seq, p.delivered_seq);
  if (p.last_message && (!c.last_message || p.last_message.seq >= c.last_message.seq)) c.last_message = p.last_message;
  if (time(p.last_activity_at) > time(c.last_activity_at)) c.last_activity_at = p.last_activity_at;
  const previous = new Map(c.members.map((m) => [m.user.id, m]));
  c.members = p.members.map((m) => {
    const old = previous.get(m.user.id);
    rememberUser(m.user, { online: m.online, last_seen: m.last_seen });
    return {
      ...m,
      delivered_seq: Math.max(m.delivered_seq, old ? old.delivered_seq : 0),
      read_seq: Math.max(m.read_seq, old ? old.read_seq : 0),
    };
  });
  return c;
}

/** The conversation, fetched once if this page has not seen it yet (e.g. someone just wrote). */
function ensureConversation(id) {
  const known = state.conversations.get(id);
  if (known) return Promise.resolve(known);
  if (state.gone.has(id)) return Promise.resolve(null);
  if (!state.fetching.has(id)) {
    const promise = api.conversation(id)
      .then((p) => upsertConversation(p))
      .catch((exc) => {
        if (exc instanceof ApiError && exc.status === 404) state.gone.add(id);
        return null;
      })
      .finally(() => state.fetching.delete(id));
    state.fetching.set(id, promise);
  }
  return state.fetching.get(id);
}

async function refreshConversation(id) {
  try {
    upsertConversation(await api.conversation(id));
  } catch (exc) {
    const c = state.conversations.get(id);
    if (c && exc instanceof ApiError && exc.status === 404) forget(c);
  }
  const c = state.conversations.get(id);
  if (c) {
    maybeRead(c);
    renderConversationEverywhere(c);
  }
}

/** A conversation gone from my list (a left group deleted, here or on another device): off the page. */
function forget(c) {
  // Deleted on another device, it goes while the keyboard may be anywhere (or nowhere) in this page:
  // the focus moves only if it was on something that goes with the chat.
  const focused = !focusWasLost();
  state.gone.add(c.id);
  if (isOpen(c)) closeConversation();
  state.conversations.delete(c.id);
  renderChatList();
  if (focused && focusWasLost()) els.filter.focus(); // its row, where closing it put the focus, is gone too
}

/** A group I had left, deleted from my list on this device or another (conversation.deleted). */
async function onConversationDeleted(id) {
  // A fetch of it may be on its way (a message of it just came): what it brings is from before this.
  const c = state.conversations.get(id) || (state.fetching.has(id) ? await state.fetching.get(id) : null);
  if (!c) return;
  // Only a group I have left is deleted. This page may not know yet that I left it (the fetch its
  // notice started is still out), or the event may be older than what the page holds (added back
  // since): the server says which.
  if (c.left) forget(c);
  else refreshConversation(id);
}

/** Keep a message (deduplicated by seq); true if it is new to this page. */
function addMessage(c, m) {
  const existing = c.msgs.get(m.seq);
  // Taken down is for good: a copy from before (a history page asked for before the notice came,
  // a late live event) does not bring it back.
  if (m.kind === "removed") c.removed.set(m.seq, m.event);
  else if (c.removed.has(m.seq)) m = { ...m, kind: "removed", text: "", media: null, event: c.removed.get(m.seq), reactions: [] };
  // So is an edit: a copy from before it (a late live event, an older page) keeps the edited text.
  if (existing && editedLater(existing, m)) m = { ...m, text: existing.text, edited_at: existing.edited_at };
  c.msgs.set(m.seq, existing ? { ...m, status: maxStatus(existing.status, m.status) } : m);
  if (m.sender === me.id) {
    if (m.client_id && c.pending.has(m.client_id)) {
      clearTimeout(c.pending.get(m.client_id).timer);
      c.pending.delete(m.client_id);
    }
    // Writing moves the writer's own watermarks (docs/protocol.md).
    c.read_seq = Math.max(c.read_seq, m.seq);
    c.delivered_seq = Math.max(c.delivered_seq, m.seq);
  }
  c.last_seq = Math.max(c.last_seq, m.seq);
  const newest = !c.last_message || m.seq >= c.last_message.seq;
  if (newest) {
    c.last_message = m;
    if (time(m.created_at) > time(c.last_activity_at)) c.last_activity_at = m.created_at;
  }
  // Their message came, so they stopped typing; an older one (a history page, a late copy) says
  // nothing of what they are doing now.
  if (m.sender && newest && !existing) c.typing.delete(m.sender);
  if (isEditNotice(m)) refetchIfOlder(c, m);
  if (isRemovalNotice(m)) takeDown(c, m.event);
  if (isRemovalNotice(m) || isEditNotice(m)) {
    // My own deletion's or edit's notice is seen by me, where I had seen all before it (as the server has it).
    if (m.event.by === me.id) {
      if (c.read_seq >= m.seq - 1) c.read_seq = Math.max(c.read_seq, m.seq);
      if (c.delivered_seq >= m.seq - 1) c.delivered_seq = Math.max(c.delivered_seq, m.seq);
    }
  }
  if (isHiddenNotice(m)) c.hiddenSeqs.add(m.seq);
  const mark = Math.max(c.read_seq, c.readSent);
  for (const seq of c.hiddenSeqs) if (seq <= mark) c.hiddenSeqs.delete(seq);
  return !existing;
}

function isRemovalNotice(m) {
  return m.kind === "system" && m.event && REMOVAL_NOTICES.has(m.event.action);
}

function isHiddenNotice(m) {
  return isEditNotice(m) || (isRemovalNotice(m) && m.event.action === "message_deleted");
}

/** What the chat shows last behind the hidden `notice`: held here, else fetched once (undefined
 * meanwhile; null if there is none, as in a chat whose older history is not mine to see). */
function previewBehind(c, notice) {
  const held = lastShownBefore(c, notice.seq);
  if (held) return held;
  if (c.previewFetch && c.previewFetch.seq === notice.seq) return c.previewFetch.message;
  c.previewFetch = { seq: notice.seq, message: undefined };
  api.messages(c.id, { before_seq: notice.seq, limit: 20 }).then((page) => {
    const shown = page.results.filter((x) => !isHiddenNotice(x));
    return shown.length ? shown[shown.length - 1] : null;
  }).catch(() => null).then((message) => {
    if (c.previewFetch && c.previewFetch.seq === notice.seq) c.previewFetch = { seq: notice.seq, message };
    renderChatList();
  });
  return undefined;
}

/** The newest message the chat shows below `seq`, if this page holds every message between. */
function lastShownBefore(c, seq) {
  for (let at = seq - 1; at > 0 && c.msgs.has(at); at -= 1) {
    const m = c.msgs.get(at);
    if (!isHiddenNotice(m)) return m;
  }
  return null;
}

function isEditNotice(m) {
  return m.kind === "system" && m.event && m.event.action === "message_edited";
}

/** Whether copy `a` of a message holds a later edit than copy `b`. */
function editedLater(a, b) {
  return Boolean(a.edited_at) && time(a.edited_at) > time(b.edited_at);
}

/** On an edit's notice: fetch the message again where this page holds a copy from before the edit
 * (in the chat, or as a quote). An edit's `edited_at` is its notice's `created_at`. */
function refetchIfOlder(c, notice) {
  const seq = notice.event.seq;
  const held = c.msgs.get(seq) || c.quoted.get(seq);
  if (!held || held.kind !== "text" || time(held.edited_at) >= time(notice.created_at)) return;
  refetchEdited(c, seq);
}

/** Fetch the message at `seq` again (GET messages?after_seq=seq-1&limit=1) and take its text. */
async function refetchEdited(c, seq) {
  if (c.refetching.has(seq)) {
    c.refetching.set(seq, true); // edited again meanwhile: once more when this one ends
    return;
  }
  c.refetching.set(seq, false);
  try {
    const page = await api.messages(c.id, { after_seq: seq - 1, limit: 1 });
    const found = page.results[0];
    if (found && found.seq === seq) takeEdit(c, found);
  } catch (exc) {
    // Not now (offline, say): the history fetched at the next connect or opening has it.
  } finally {
    const again = c.refetching.get(seq);
    c.refetching.delete(seq);
    if (again) refetchEdited(c, seq);
  }
  renderConversationEverywhere(c);
}

/** The text of message `m` as it now is (after an edit), wherever this page holds it. */
function takeEdit(c, m) {
  if (m.kind !== "text") return; // deleted meanwhile: its notice says so
  for (const copies of [c.msgs, c.quoted]) {
    const held = copies.get(m.seq);
    if (held && held.kind === "text" && !editedLater(held, m)) copies.set(m.seq, { ...held, text: m.text, edited_at: m.edited_at });
  }
  if (c.last_message && c.last_message.seq === m.seq && c.msgs.has(m.seq)) c.last_message = c.msgs.get(m.seq);
}

/** A moderator took the message at `notice.seq` down, or its sender deleted it for everyone: it
 * keeps its place, its text and media go. */
function takeDown(c, notice) {
  const mark = notice.action === "message_deleted" ? { action: notice.action, by: notice.by } : null;
  c.removed.set(notice.seq, mark);
  c.deleteErrors.delete(notice.seq);
  if (c.confirmDelete === notice.seq) c.confirmDelete = null;
  if (c.editing && c.editing.seq === notice.seq) stopEditing(c); // nothing left to edit
  const held = c.msgs.get(notice.seq);
  if (!held) return; // not loaded here yet: it comes removed, or addMessage removes it
  c.msgs.set(notice.seq, { ...held, kind: "removed", text: "", media: null, event: mark, reactions: [] });
  if (c.reactingTo === notice.seq) c.reactingTo = null;
  if (c.last_message && c.last_message.seq === notice.seq) c.last_message = c.msgs.get(notice.seq);
}

/** What shows in place of a removed message: who removed it, as its `event` says. */
function removedText(m) {
  if (!m.event || m.event.action !== "message_deleted") return REMOVED_TEXT;
  if (m.event.by === me.id) return "You deleted this message";
  return m.event.by === m.sender ? "This message was deleted" : `This message was deleted by admin ${nameOf(m.event.by)}`;
}

/** Ask, under my message at `seq`, whether to delete it for everyone (or stop asking: null). */
function confirmDelete(c, seq, { focus = "confirm" } = {}) {
  const asked = c.confirmDelete;
  c.confirmDelete = seq;
  c.deleteErrors.delete(seq ?? asked);
  renderMessages(c);
  const row = els.messagesInner.querySelector(`.msg[data-seq="${seq ?? asked}"]`);
  const target = row && row.querySelector(focus === "confirm" && seq ? ".delete-confirm .button-danger" : ".msg-delete");
  if (target) target.focus({ preventScroll: true });
}

/** Delete my message at `seq` for everyone; the notice that comes back over the socket (or at the
 * next catch-up) shows it deleted on every device. */
async function deleteForEveryone(c, seq) {
  c.confirmDelete = null;
  try {
    await api.delete(`conversations/${c.id}/messages/${seq}`);
  } catch (exc) {
    c.deleteErrors.set(seq, exc.message || "The message could not be deleted.");
  }
  renderMessages(c);
}

function statusOf(c, m) {
  const others = c.members.filter((x) => x.user.id !== m.sender);
  // Alone in a group, nobody's watermark can say more than sent (docs/protocol.md); the minimum of
  // no watermarks at all would otherwise be Infinity, past every seq: "read".
  if (!others.length) return "sent";
  const lowestRead = Math.min(...others.map((x) => x.read_seq));
  const lowestDelivered = Math.min(...others.map((x) => x.delivered_seq));
  const derived = lowestRead >= m.seq ? "read" : lowestDelivered >= m.seq ? "delivered" : "sent";
  return maxStatus(derived, m.status || "sent");
}

/** Move `held` over every message now present, then acknowledge and read; fill any gap. */
function advance(c) {
  while (c.msgs.has(c.held + 1)) c.held += 1;
  if (maxKey(c.msgs) > c.held) scheduleGapFill(c); // something above a missing seq: a gap
  sendAck(c);
  maybeRead(c);
}

function sendAck(c) {
  // Also for a group left: what catch-up sent of it, up to the notice, is replayed until acknowledged.
  if (c.held <= c.ackSent) return;
  if (conn.send({ type: "ack", conversation: c.id, seq: c.held })) c.ackSent = c.held;
}

function maybeRead(c) {
  // A group I have left too: its history up to the notice of my going is read as any other.
  if (!isOpen(c) || !isVisible()) return;
  if (!c.loaded) return;
  const upTo = c.held;
  if (upTo <= Math.max(c.read_seq, c.readSent)) return;
  if (conn.send({ type: "read", conversation: c.id, seq: upTo })) {
    c.readSent = upTo;
    renderChatList();
    renderTitleCount();
  }
}

function scheduleGapFill(c) {
  if (c.gapTimer) return;
  // A moment's grace: the missing seq is often already on its way on the socket.
  c.gapTimer = setTimeout(() => {
    c.gapTimer = null;
    if (!c.msgs.has(c.held + 1) && maxKey(c.msgs) > c.held) fillFrom(c, () => c.held);
  }, 400);
}

/** Fetch history forward from `start()` until nothing more (the protocol's after_seq catch-up). */
async function fillFrom(c, start) {
  if (c.filling) return c.filling;
  c.filling = (async () => {
    try {
      for (let round = 0; round < 50; round += 1) {
        const after = start();
        const page = await api.messages(c.id, { after_seq: after, limit: 200 });
        for (const m of page.results) addMessage(c, m);
        if (!page.has_more || !page.results.length) break;
      }
    } catch (exc) {
      if (exc instanceof ApiError && exc.status === 404) forget(c);
    } finally {
      c.filling = null;
    }
    advance(c);
    renderConversationEverywhere(c);
  })();
  return c.filling;
}

/** The highest seq the open view shows with no gap, counting up from its oldest message. */
function contiguousTop(c) {
  if (!c.msgs.size) return c.held;
  let top = minKey(c.msgs);
  while (c.msgs.has(top + 1)) top += 1;
  return Math.max(top, c.held);
}

async function loadLatest(c) {
  const page = await api.messages(c.id, { limit: PAGE });
  for (const m of page.results) addMessage(c, m);
  if (page.results.length) {
    // Keep older messages this page already holds only where they join up with the new page.
    let floor = page.results[0].seq;
    while (c.msgs.has(floor - 1)) floor -= 1;
    for (const seq of [...c.msgs.keys()]) if (seq < floor) c.msgs.delete(seq);
  }
  c.hasMoreBefore = page.has_more;
  c.loaded = true;
  advance(c);
}

async function loadOlder(c) {
  if (c.loadingOlder || !c.hasMoreBefore || !c.loaded) return;
  c.loadingOlder = true;
  try {
    const before = minKey(c.msgs);
    const page = await api.messages(c.id, before === Infinity ? { limit: PAGE } : { before_seq: before, limit: PAGE });
    for (const m of page.results) addMessage(c, m);
    c.hasMoreBefore = page.has_more;
  } catch (exc) {
    // Leave hasMoreBefore as it was: scrolling up again retries.
  } finally {
    c.loadingOlder = false;
  }
  if (isOpen(c)) renderMessages(c, { keepTop: true });
}

// --- sending ---------------------------------------------------------------------------------

function sendText(c, text, media = null, replyTo = takeReply(c)) {
  const clientId = uuid4();
  const pending = { client_id: clientId, text, media, reply_to: replyTo, created_at: new Date().toISOString(), state: "pending", error: null, timer: null, resends: 0 };
  c.pending.set(clientId, pending);
  c.last_activity_at = pending.created_at;
  // The message ends "typing…" on the other side: the next words typed here say so again at once.
  c.lastTypingSent = 0;
  transmit(c, pending);
  renderMessages(c, { toBottom: true });
  renderChatList();
}

function transmit(c, pending) {
  pending.state = "pending";
  pending.error = null;
  clearTimeout(pending.timer);
  pending.timer = null;
  const frame = { type: "message.send", client_id: pending.client_id, conversation: c.id, text: pending.text };
  if (pending.media) frame.media_id = pending.media.id;
  if (pending.reply_to) frame.reply_to = pending.reply_to;
  // Not connected: it stays pending, with no deadline, and goes out when the socket is back (see
  // onOpen). The banner promises as much, however long the connection is away.
  if (!conn.send(frame)) return;
  pending.timer = setTimeout(() => {
    if (c.pending.get(pending.client_id) === pending && pending.state === "pending") fail(c, pending, "Not sent yet.");
  }, SEND_TIMEOUT_MS);
}

/** The socket is gone: no answer can come on it, so waiting for one must not count against a message
 * in flight. It stays pending and is sent again (same client_id) on the next socket. */
function pauseSendDeadlines() {
  for (const c of state.conversations.values()) {
    for (const pending of c.pending.values()) {
      clearTimeout(pending.timer);
      pending.timer = null;
    }
  }
}

/** A send refused for now (NOT_NOW) stays pending and goes again by itself, with the same
 * client_id, once the server said it may: the person sees it waiting, as one written offline. */
function resendLater(c, pending, retryAfterSeconds) {
  clearTimeout(pending.timer);
  pending.resends += 1;
  const seconds = Math.min(60, Math.max(1, Number(retryAfterSeconds) || 1));
  pending.timer = setTimeout(() => {
    if (c.pending.get(pending.client_id) === pending && pending.state === "pending") transmit(c, pending);
  }, seconds * 1000 + Math.random() * 250);
}

function fail(c, pending, message) {
  clearTimeout(pending.timer);
  pending.state = "failed";
  pending.error = message;
  if (isOpen(c)) renderMessages(c);
  renderChatList();
}

/** Retry a failed message with the same client_id: the server never stores it twice. */
async function retry(c, clientId) {
  const pending = c.pending.get(clientId);
  if (!pending) return;
  pending.resends = 0;
  if (conn.isOpen) {
    transmit(c, pending);
    renderMessages(c);
    return;
  }
  pending.state = "pending";
  renderMessages(c);
  try {
    const message = await api.send(c.id, clientId, pending.text, pending.media && pending.media.id, pending.reply_to);
    addMessage(c, message);
    advance(c);
    renderConversationEverywhere(c);
  } catch (exc) {
    fail(c, pending, errorText(exc));
  }
}

/** Retry, and keep the keyboard where it was: the row is rebuilt as pending, its Retry button gone. */
function retryFromButton(c, clientId) {
  retry(c, clientId); // renders the pending row before it awaits anything
  if (!focusWasLost()) return;
  if (!els.composer.hidden) {
    els.input.focus();
    return;
  }
  const row = messageNodes.get(`c:${clientId}`);
  if (row) {
    row.tabIndex = -1;
    row.focus();
  }
}

// --- events from the server ------------------------------------------------------------------

async function onMessageNew(m) {
  const addedMe = m.event && m.event.action === "member_added" && m.event.user === me.id;
  if (addedMe) state.gone.delete(m.conversation);
  // A group this user has left while this page was away is fetched as any other: it is in their
  // list, marked left, and what catch-up sends of it (up to the notice) is acknowledged as usual.
  const c = await ensureConversation(m.conversation);
  if (!c) return;
  if (addedMe && c.left) {
    // Back in a group I had left: its history (and what I acknowledge) starts again here.
    for (const seq of [...c.msgs.keys()]) if (seq < m.seq) c.msgs.delete(seq);
    c.held = Math.max(c.held, m.seq - 1);
    c.ackSent = Math.max(c.ackSent, m.seq - 1);
    c.hasMoreBefore = false;
    c.left = false;
  }
  const fresh = addMessage(c, m);
  if (fresh && m.kind === "system" && m.event && MEMBER_ACTIONS.has(m.event.action)) refreshConversation(c.id);
  advance(c);
  renderConversationEverywhere(c);
  if (fresh) notifyOf(c, m);
}

/** A desktop notification of someone's new message, as WhatsApp Web shows one: not for my own, nor
 * for system lines, nor in a muted chat, nor for a chat I am looking at, nor for one read already
 * (on another device); one per chat, the newest replacing the one before. */
function notifyOf(c, m) {
  if (!m.sender || m.sender === me.id || m.kind !== "text" || isMuted(c) || c.left) return;
  if (isOpen(c) && isVisible()) return;
  if (m.seq <= Math.max(c.read_seq, c.readSent)) return;
  const group = c.kind === "group";
  const photo = group ? c.photo : photoOf(m.sender);
  notifications.show({
    title: group ? titleOf(c) : nameOf(m.sender),
    body: group ? `${nameOf(m.sender)}: ${snippetOf(m)}` : snippetOf(m),
    tag: `conversation-${c.id}`,
    icon: photo ? photo.thumbnail_url || photo.url : null,
    onClick: () => openConversation(c.id),
  });
}

/** The chat list's offer to turn desktop notifications on, until the browser has been asked or
 * the person puts it aside. */
function renderNotifyOffer() {
  const offer = els.notifyOffer;
  offer.hidden = !notifications.worthOffering();
  if (offer.hidden) return;
  clear(offer);
  append(offer, [
    h("span", { class: "notify-offer-icon" }, icon("bell", { size: 28 })),
    h("span", { class: "notify-offer-text" },
      h("strong", { text: "Get notified of new messages" }),
      h("button", { type: "button", class: "link-button", text: "Turn on desktop notifications", onclick: async () => {
        await notifications.ask();
        renderNotifyOffer();
      } })),
    h("button", { type: "button", class: "icon-button", "aria-label": "Not now", title: "Not now", onclick: () => {
      notifications.dismissOffer();
      renderNotifyOffer();
    } }, icon("close", { size: 20 })),
  ]);
}

function onMessageSent(clientId, m) {
  const c = state.conversations.get(m.conversation);
  if (!c) return;
  addMessage(c, m);
  advance(c);
  renderConversationEverywhere(c);
}

function onStatus(ev) {
  const c = state.conversations.get(ev.conversation);
  if (!c) return;
  const member = c.members.find((m) => m.user.id === ev.user);
  if (member) {
    member.delivered_seq = Math.max(member.delivered_seq, ev.seq);
    if (ev.status === "read") member.read_seq = Math.max(member.read_seq, ev.seq);
  } else if (ev.user !== me.id) {
    refreshConversation(c.id);
  }
  if (ev.user === me.id) {
    c.delivered_seq = Math.max(c.delivered_seq, ev.seq);
    if (ev.status === "read") c.read_seq = Math.max(c.read_seq, ev.seq);
  }
  renderConversationEverywhere(c);
  if (shownMessageInfo && shownMessageInfo.c === c) renderMessageInfo();
}

function onTyping(ev) {
  const c = state.conversations.get(ev.conversation);
  if (!c || ev.user === me.id) return;
  clearTimeout(c.typing.get(ev.user));
  c.typing.set(ev.user, setTimeout(() => {
    c.typing.delete(ev.user);
    renderConversationEverywhere(c, { messages: false });
  }, TYPING_SHOW_MS));
  renderConversationEverywhere(c, { messages: false });
}

function onPresence(ev) {
  const user = state.users.get(ev.user);
  if (user) {
    user.online = ev.online;
    if (ev.last_seen) user.last_seen = ev.last_seen;
  }
  for (const c of state.conversations.values()) {
    for (const m of c.members) {
      if (m.user.id === ev.user) {
        m.online = ev.online;
        if (ev.last_seen) m.last_seen = ev.last_seen;
      }
    }
  }
  const open = state.conversations.get(state.openId);
  if (open) renderHeader(open);
}

/** Someone's name, about or photo changed (mine too, from another device): every place that shows it. */
function onUserUpdated(user) {
  if (user.id === me.id) {
    Object.assign(me, user);
    renderProfileButton();
  }
  rememberUser(user);
  renderChatList();
  const open = openChat();
  if (open) {
    renderHeader(open);
    renderMessages(open);
    // Redrawn where it is open: drawn anew, a closed info panel would open by itself.
    if (!els.infoDrawer.hidden) refreshInfo(open);
  }
}

function onError(ev) {
  if (ev.frame !== "message.send" || ev.ref === null || ev.ref === undefined) return;
  for (const c of state.conversations.values()) {
    const pending = c.pending.get(ev.ref);
    if (pending) {
      if (NOT_NOW.has(ev.code) && pending.resends < MAX_RESENDS) {
        resendLater(c, pending, ev.retry_after);
        return;
      }
      fail(c, pending, ev.message);
      if (ev.code === "blocked") refreshComposer(c);
      return;
    }
  }
}

function onEvent(ev) {
  switch (ev.type) {
    case "message.new": onMessageNew(ev.message); break;
    case "message.sent": onMessageSent(ev.client_id, ev.message); break;
    case "message.status": onStatus(ev); break;
    case "typing": onTyping(ev); break;
    case "presence": onPresence(ev); break;
    case "user.updated": onUserUpdated(ev.user); break;
    case "conversation.deleted": onConversationDeleted(ev.conversation); break;
    case "error": onError(ev); break;
    case "conversation.muted": onOwnSetting(ev, (c) => setMuted(c, ev)); break;
    case "conversation.pinned": onOwnSetting(ev, (c) => { c.pinned_at = ev.pinned_at || null; }); break;
    case "message.reaction": onReaction(ev); break;
    case "session.revoked": leave("/login/"); break;
    default: break;
  }
}

async function onOpen() {
  for (const c of state.conversations.values()) {
    c.ackSent = c.delivered_seq;
    c.readSent = c.read_seq;
    for (const pending of c.pending.values()) if (pending.state === "pending") transmit(c, pending);
  }
  if (conn.opens > 1) await resync();
  for (const c of state.conversations.values()) {
    sendAck(c);
    maybeRead(c);
  }
}

/** After a reconnect: the list again, and the open conversation caught up from history. */
async function resync() {
  let list;
  try {
    list = await api.conversations();
  } catch (exc) {
    return;
  }
  const present = new Set();
  for (const p of list) {
    const c = upsertConversation(p);
    present.add(c.id);
    if (!isOpen(c)) {
      // Other conversations reload when opened; their delivered watermark is the server's.
      c.loaded = false;
      c.held = Math.max(c.held, c.delivered_seq);
    }
  }
  // Gone from the list: a left group deleted on another device.
  for (const c of [...state.conversations.values()]) if (!present.has(c.id)) forget(c);
  renderChatList();
  const open = state.conversations.get(state.openId);
  if (open && !open.left) {
    try {
      if (!open.loaded) await loadLatest(open); // added back meanwhile: its history starts anew
      else await fillFrom(open, () => contiguousTop(open));
    } catch (exc) {
      // Shown as it is; the next reconnect or opening tries again.
    }
    renderConversationEverywhere(open);
  }
  renderTitleCount();
}

// --- rendering: the chat list ----------------------------------------------------------------

const listItems = new Map(); // conversation id -> li

/** Pinned chats first, the latest pinned at the top (docs/protocol.md), then by newest activity. */
function sortedConversations() {
  return [...state.conversations.values()]
    .sort((a, b) => Boolean(b.pinned_at) - Boolean(a.pinned_at) || time(b.pinned_at) - time(a.pinned_at)
      || time(b.last_activity_at) - time(a.last_activity_at) || b.id - a.id);
}

function typingText(c) {
  if (!c.typing.size) return "";
  if (c.kind === "direct") return "typing…";
  const names = [...c.typing.keys()].map(nameOf);
  return names.length === 1 ? `${names[0]} is typing…` : `${names.length} people are typing…`;
}

function previewOf(c) {
  const typing = typingText(c);
  if (typing) return h("span", { class: "preview-typing", text: typing });
  // A chat left with something typed in it says so, as WhatsApp does (the open one shows it in
  // the composer).
  if (!isOpen(c) && c.draft.trim()) return [h("span", { class: "preview-draft", text: "Draft: " }), h("span", { class: "preview-text", text: c.draft })];
  const pendings = [...c.pending.values()];
  const last = pendings.length ? pendings[pendings.length - 1] : null;
  if (last) {
    return [last.state === "failed" ? icon("alert", { size: 16, label: "Not sent" }) : icon("clock", { size: 14, label: "Sending" }),
      h("span", { class: "preview-text", text: last.media ? `${mediaLabel(last.media)}${last.text ? `: ${last.text}` : ""}` : last.text })];
  }
  let m = c.last_message;
  // Notices not shown in the chat (an edit's, a deletion's) show in the list as what the chat ends
  // with: the newest message before them, where this page holds it.
  if (m && isHiddenNotice(m)) {
    const behind = previewBehind(c, m);
    if (behind === undefined) return h("span", { class: "preview-text" }); // being fetched
    if (behind) m = behind;
  }
  if (m && isEditNotice(m)) {
    // Its notice is not shown: the list shows the edited message, as it now is (fetched if need be;
    // the notice's own words only for one from before I joined, which I cannot see).
    const notice = m;
    m = c.msgs.get(notice.event.seq) ?? c.quoted.get(notice.event.seq);
    if (m === undefined) fetchQuoted(c, notice.event.seq);
    if (m === undefined) return h("span", { class: "preview-text" });
    if (m === null) m = notice;
  }
  if (!m) return h("span", { class: "preview-text muted", text: c.kind === "group" ? "Group created" : "No messages yet" });
  if (isRemovalNotice(m) && m.event.action === "message_deleted") {
    // Its notice is not shown: the chat shows the message deleted in its place, and so does the list.
    const deleted = c.msgs.get(m.event.seq) || { sender: m.event.by, event: m.event };
    return h("span", { class: "preview-text preview-system", text: removedText(deleted) });
  }
  if (m.kind === "system") return h("span", { class: "preview-text preview-system", text: m.text });
  if (m.kind === "removed") return h("span", { class: "preview-text preview-system", text: removedText(m) });
  const parts = [];
  if (m.sender === me.id) parts.push(ticks(statusOf(c, m)));
  else if (c.kind === "group") parts.push(h("span", { class: "preview-author", text: `${nameOf(m.sender)}: ` }));
  parts.push(h("span", { class: "preview-text", text: snippetOf(m) }));
  return parts;
}

function renderChatItem(c) {
  let li = listItems.get(c.id);
  if (!li) {
    const button = h("button", { type: "button", class: "chat-item", dataset: { conversation: c.id }, onclick: () => openConversation(c.id) });
    li = h("li", {}, button);
    listItems.set(c.id, li);
  }
  const button = li.firstChild;
  const unread = unreadOf(c);
  const title = titleOf(c);
  button.classList.toggle("active", isOpen(c));
  button.classList.toggle("has-unread", unread > 0 && !isOpen(c));
  if (isOpen(c)) button.setAttribute("aria-current", "true");
  else button.removeAttribute("aria-current");
  const muted = isMuted(c);
  const badge = unread > 0 && !isOpen(c)
    ? h("span", { class: muted ? "unread-badge unread-badge-muted" : "unread-badge", "aria-label": `${unread} unread`, text: unread > 999 ? "999+" : String(unread) })
    : null;
  clear(button);
  append(button, [
    conversationAvatar(c),
    h("span", { class: "chat-item-body" },
      h("span", { class: "chat-item-top" },
        h("span", { class: "chat-item-name" },
          h("span", { class: "chat-item-title", text: title }),
          c.kind === "direct" && peerOf(c) ? businessBadge(peerOf(c).id) : null),
        h("time", { class: "chat-item-time", datetime: c.last_activity_at || "", text: fmt.listTime(c.last_activity_at) })),
      h("span", { class: "chat-item-bottom" },
        h("span", { class: "chat-item-preview" }, previewOf(c)),
        muted ? icon("muted", { size: 18, label: "Muted" }) : null,
        c.pinned_at ? icon("pin", { size: 18, label: "Pinned" }) : null,
        badge)),
  ]);
  return li;
}

function renderChatList() {
  const filter = state.filter.trim().toLowerCase();
  const wanted = sortedConversations().filter((c) => !filter || titleOf(c).toLowerCase().includes(filter));
  const keep = new Set(wanted.map((c) => c.id));
  for (const [id, li] of listItems) if (!keep.has(id)) { li.remove(); listItems.delete(id); }
  let cursor = els.chatList.firstChild;
  for (const c of wanted) {
    const li = renderChatItem(c);
    if (li !== cursor) els.chatList.insertBefore(li, cursor);
    else cursor = cursor.nextSibling;
  }
  els.chatListEmpty.hidden = state.conversations.size > 0;
  // A search that finds nothing says so: an empty list alone looks like chats were lost.
  els.chatListNoMatch.hidden = !(filter && !wanted.length && state.conversations.size > 0);
  renderTitleCount();
}

function renderTitleCount() {
  let total = 0;
  for (const c of state.conversations.values()) {
    if ((!isOpen(c) || !isVisible()) && !isMuted(c)) total += unreadOf(c) > 0 ? 1 : 0;
  }
  document.title = total ? `(${total}) messenger` : "messenger";
}

// --- rendering: the open conversation --------------------------------------------------------

const messageNodes = new Map(); // key -> element, for the open conversation

function subtitleOf(c) {
  const typing = typingText(c);
  if (typing) return { text: typing, typing: true };
  if (c.left) return { text: "You are no longer a participant" };
  if (c.kind === "direct") {
    const peer = peerOf(c);
    if (!peer) return { text: "" };
    if (state.blocked.has(peer.id)) return { text: "blocked" };
    // While this page is cut off, "online" would be a guess: show what is known for sure.
    if (peer.online && conn.isOpen) return { text: "online" };
    if (peer.last_seen) return { text: fmt.lastSeen(peer.last_seen) };
    // An app's account has no real number (docs/developer-api.md): say what it is instead.
    return { text: peer.is_business ? "Business account" : peer.phone_number || "" };
  }
  const names = c.members.map((m) => nameOf(m.user.id)).sort((a, b) => (a === "You") - (b === "You") || a.localeCompare(b));
  return { text: names.join(", ") };
}

function renderHeader(c) {
  const title = titleOf(c);
  els.title.textContent = title;
  const peer = c.kind === "direct" ? peerOf(c) : null;
  els.headerBadge.hidden = !(peer && isBusiness(peer.id));
  const sub = subtitleOf(c);
  els.subtitle.textContent = sub.text;
  els.subtitle.classList.toggle("typing", Boolean(sub.typing));
  conversationAvatar(c, { el: els.headerAvatar });
  refreshComposer(c);
}

function refreshComposer(c) {
  const peer = peerOf(c);
  let notice = null;
  if (c.left && state.confirmDeleteChat === c.id) {
    notice = [h("span", { text: "Delete this chat? Its messages go from your list for good. " }),
      h("button", { type: "button", class: "button button-small button-danger", dataset: { keep: "confirm-delete-chat" }, onclick: () => deleteChat(c), text: "Delete" }),
      h("button", { type: "button", class: "button button-small", onclick: () => askDeleteChat(c, false), text: "Cancel" })];
  } else if (c.left) {
    notice = [h("span", { text: "You're no longer a participant in this group. " }),
      h("button", { type: "button", class: "link-button", dataset: { keep: "delete-chat-link" }, onclick: () => askDeleteChat(c), text: "Delete chat" }),
      state.deleteError && state.deleteError.id === c.id
        ? h("span", { class: "notice-error", role: "alert", text: state.deleteError.message }) : null];
  }
  else if (peer && state.blocked.has(peer.id)) {
    const failed = state.unblockError && state.unblockError.userId === peer.id ? state.unblockError.message : null;
    notice = [h("span", { text: `You blocked ${nameOf(peer.id)}. ` }),
      h("button", { type: "button", class: "link-button", onclick: () => unblockFromNotice(peer.id), text: "Unblock" }),
      failed ? h("span", { class: "notice-error", role: "alert", text: failed }) : null];
  }
  clear(els.composerNotice);
  if (notice) append(els.composerNotice, [notice]);
  els.composerNotice.hidden = !notice;
  els.composer.hidden = Boolean(notice);
  if (notice) stopEditing(c); // no composer to edit in (blocked, left)
  renderEditBar(c);
  renderReplyBar(c);
}

/** Ask (under the chat, where the composer was) before a left group is deleted: it cannot be undone. */
function askDeleteChat(c, asking = true) {
  state.confirmDeleteChat = asking ? c.id : null;
  if (!isOpen(c)) return;
  if (asking && !els.infoDrawer.hidden) closeInfo();
  refreshComposer(c);
  const target = els.composerNotice.querySelector(asking ? '[data-keep="confirm-delete-chat"]' : '[data-keep="delete-chat-link"]');
  if (target) target.focus({ preventScroll: true });
}

/** Take a group I have left off my list, and its history with it (DELETE conversations/{id}). */
async function deleteChat(c) {
  state.deleteError = null;
  state.confirmDeleteChat = null;
  try {
    await api.delete(`conversations/${c.id}`);
  } catch (exc) {
    // Deleted already (from another device): what was asked for is so.
    if (!(exc instanceof ApiError && exc.status === 404)) {
      state.deleteError = { id: c.id, message: errorText(exc) };
      if (isOpen(c)) refreshComposer(c);
      if (!els.infoDrawer.hidden) refreshInfo(c);
      return;
    }
  }
  forget(c);
}

async function unblockFromNotice(userId) {
  state.unblockError = null;
  try {
    await setBlocked(userId, false);
  } catch (exc) {
    state.unblockError = { userId, message: errorText(exc) };
    const c = openChat();
    if (c) refreshComposer(c);
    return;
  }
  // The notice and its button are gone: the composer that takes their place takes the focus too.
  if (!els.composer.hidden && focusWasLost()) els.input.focus();
}

/** True when the focused element has just been taken out of the page (focus fell to the body). */
function focusWasLost() {
  return !document.activeElement || document.activeElement === document.body;
}

function messageItems(c) {
  const items = [];
  if (c.hasMoreBefore && c.loaded) items.push({ key: "older", sig: "older", build: () => h("div", { class: "history-loading", role: "status", text: "Loading earlier messages…" }) });
  if (!c.hasMoreBefore && c.loaded) {
    const text = c.kind === "group" ? "This is the start of the group." : `This is the start of your chat with ${titleOf(c)}.`;
    items.push({ key: "start", sig: text, build: () => h("div", { class: "history-start" }, h("span", { text })) });
  }
  // A deletion's or an edit's notice is not shown: the message itself shows it, in its place.
  const entries = [...c.msgs.values()].filter((m) => !isHiddenNotice(m))
    .sort((a, b) => a.seq - b.seq)
    .map((m) => ({ m, own: m.sender === me.id, pending: null }));
  for (const p of c.pending.values()) {
    entries.push({ m: { seq: null, sender: me.id, kind: "text", text: p.text, media: p.media, client_id: p.client_id, created_at: p.created_at, reply_to: p.reply_to }, own: true, pending: p });
  }
  const days = new Set();
  let previous = null;
  for (const entry of entries) {
    const { m } = entry;
    const day = fmt.dayKey(m.created_at);
    if (!days.has(day) && (!previous || fmt.dayKey(previous.created_at) !== day)) {
      days.add(day);
      const label = fmt.dayLabel(m.created_at);
      items.push({ key: `day:${day}`, sig: label, build: () => h("div", { class: "day-separator", role: "separator" }, h("span", { text: label })) });
    }
    const first = !previous || previous.kind === "system" || previous.sender !== m.sender || fmt.dayKey(previous.created_at) !== day;
    const key = entry.own && m.client_id ? `c:${m.client_id}` : `s:${m.seq}`;
    const status = m.kind === "system" ? "" : entry.pending ? entry.pending.state : entry.own ? statusOf(c, m) : "in";
    // Whatever but the ticks that changes the row rebuilds it (canRetick compares the shape).
    const removal = m.kind === "removed" ? removedText(m) : "";
    const deleting = m.seq && (c.deleteErrors.has(m.seq) || c.confirmDelete === m.seq)
      ? `${c.deleteErrors.get(m.seq) || ""}|${c.confirmDelete === m.seq}` : "";
    const quote = quoteFor(c, m);
    if (quote && quote.state === "loading") fetchQuoted(c, m.reply_to);
    const edit = `${m.edited_at || ""}|${mayEdit(c, m, entry.own)}|${c.editing && c.editing.seq === m.seq ? "editing" : ""}`;
    // Pending (no seq yet) and stored alike when nothing is open on it, so that a message of mine keeps its row (retick).
    const reacting = `${reactionsSig(m)}|${Boolean(m.seq) && c.reactingTo === m.seq}|${(m.seq && c.reactionErrors.get(m.seq)) || ""}`;
    const shape = `${first}|${m.kind}|${m.kind !== "system" && c.kind === "group" && !entry.own ? nameOf(m.sender) : ""}|${removal}|${deleting}|${!entry.own && deletable(c, m, entry)}|${canReply(c)}|${quote ? quote.sig : ""}|${edit}|${reacting}`;
    items.push({
      key, sig: `${status}|${m.seq}|${shape}`, shape, status,
      seq: m.seq, createdAt: m.created_at, actions: () => messageActions(c, m, entry),
      build: () => messageElement(c, m, { own: entry.own, first, status, pending: entry.pending, quote }),
    });
    previous = m;
  }
  return items;
}

function statusIcon(status) {
  if (status === "pending") return icon("clock", { size: 14, label: "Sending" });
  if (status === "failed") return icon("alert", { size: 16, label: "Not sent" });
  return ticks(status);
}

const MEDIA_LABELS = { image: "Photo", video: "Video", voice: "Voice message", document: "Document" };

/** What a message's media is called in a preview: a document by its name, the rest by their kind. */
function mediaLabel(media) {
  return media.name || MEDIA_LABELS[media.kind] || "File";
}

/** A message's photo (thumbnail, opening full size), video, voice message or document. */
function mediaElement(media) {
  const label = MEDIA_LABELS[media.kind] || "File";
  if (media.kind === "image") {
    // Its size on screen, at most 320 px wide: the photo's own width as the <img> width would make
    // the bubble that wide too (up to its limit), the photo in it shrunk by CSS to 320 px beside a
    // blank strip. Only the shape is reserved, so the row does not jump when it loads.
    const scale = media.width ? Math.min(1, 320 / media.width) : 1;
    const width = media.width ? Math.round(media.width * scale) : undefined;
    const height = media.width && media.height ? Math.round(media.height * scale) : undefined;
    return h("a", { class: "msg-media msg-image", href: media.url, target: "_blank", rel: "noopener", "aria-label": `${label}, open full size` },
      h("img", { src: media.thumbnail_url || media.url, alt: label, width, height, loading: "lazy" }));
  }
  if (media.kind === "video") return h("video", { class: "msg-media msg-video", src: media.url, controls: true, preload: "metadata", "aria-label": label });
  if (media.kind === "voice") return voicePlayer(media);
  return h("a", { class: "msg-media msg-document", href: media.url, download: media.name || "" }, `${media.name || label} (${Math.max(1, Math.round(media.size / 1024))} KB)`);
}

// A message of mine whose status moves on (pending, then sent, delivered, read) keeps its row:
// rebuilt, a voice message or video playing in it would stop and its photo load again. What
// changes is the ticks, and once stored its seq and the server's time. A failed row differs in
// more (the reason, the retry button), so a row is rebuilt on its way to or from failed.
const TICK_STATUSES = new Set(["sent", "delivered", "read"]);

function canRetick(el, item) {
  return el.dataset.shape === item.shape && TICK_STATUSES.has(item.status)
    && (TICK_STATUSES.has(el.dataset.status) || el.dataset.status === "pending");
}

function retick(el, item) {
  el.classList.replace(`msg-${el.dataset.status}`, `msg-${item.status}`);
  el.dataset.status = item.status;
  el.dataset.seq = item.seq;
  const time = el.querySelector(".msg-meta time");
  time.dateTime = item.createdAt;
  time.textContent = fmt.clock(item.createdAt);
  time.nextElementSibling.replaceWith(statusIcon(item.status));
  // Sent at last (it was pending), it can now be replied to and deleted for everyone.
  if (!el.querySelector(".msg-actions")) {
    const actions = item.actions();
    if (actions) el.querySelector(".bubble").append(actions);
  }
}

/** Mine, or anyone's in a group I am admin of (docs/protocol.md); the server has the last word on how old. */
function deletable(c, m, { own, pending }) {
  if (c.left) return false; // a group I left is read-only
  const groupAdmin = c.kind === "group" && c.role === "admin";
  return Boolean(m.seq && m.kind === "text" && !pending && (own || (groupAdmin && m.sender)));
}

function deleteButton(c, seq) {
  return h("button", { type: "button", class: "msg-delete", title: "Delete for everyone", "aria-label": "Delete message for everyone",
    onclick: () => confirmDelete(c, seq) }, icon("trash", { size: 16 }));
}

/** Whether messages here can be replied to now: the composer is there to write the reply in. */
function canReply(c) {
  const peer = peerOf(c);
  return !c.left && !(peer && state.blocked.has(peer.id));
}

function replyable(c, m, { pending }) {
  return Boolean(m.seq && m.kind === "text" && !pending && canReply(c));
}

/** Mine, a text or a caption (a voice message has none), within the time the server allows (it has
 * the last word), where the composer is there to edit it in. Pending or stored alike: a row's shape
 * says it, and a message of mine keeps its row when it is stored (retick). */
function mayEdit(c, m, own) {
  return Boolean(own && m.kind === "text" && !(m.media && m.media.kind === "voice") && canReply(c)
    && Date.now() - time(m.created_at) < EDIT_SECONDS * 1000);
}

/** Whether the message offers Edit now: stored, and `mayEdit`. */
function editable(c, m, { own, pending }) {
  return Boolean(m.seq && !pending && mayEdit(c, m, own));
}

/** A person's message stored here (not pending, not deleted): it can be sent on, also from a group I left. */
function forwardable(m, { pending }) {
  return Boolean(m.seq && m.kind === "text" && !pending);
}

/** The buttons beside a bubble (shown on hover or keyboard focus): React, Reply, Forward, Edit and Delete where allowed. */
function messageActions(c, m, entry) {
  // Whoever may reply may react: a person's stored message, in a chat I can still write in.
  const react = replyable(c, m, entry)
    ? h("button", { type: "button", class: "msg-react", title: "React", "aria-label": "React to message",
      "aria-expanded": String(c.reactingTo === m.seq), onclick: () => togglePalette(c, m.seq) }, icon("smile", { size: 16 }))
    : null;
  const reply = replyable(c, m, entry)
    ? h("button", { type: "button", class: "msg-reply", title: "Reply", "aria-label": "Reply to message", onclick: () => startReply(c, m.seq) },
      icon("reply", { size: 16 }))
    : null;
  const edit = editable(c, m, entry)
    ? h("button", { type: "button", class: "msg-edit", title: "Edit", "aria-label": "Edit message", onclick: () => startEdit(c, m.seq) },
      icon("edit", { size: 16 }))
    : null;
  const forward = forwardable(m, entry)
    ? h("button", { type: "button", class: "msg-forward", title: "Forward", "aria-label": "Forward message", onclick: () => askForward(c, m.seq) },
      icon("forward", { size: 16 }))
    : null;
  const remove = deletable(c, m, entry) ? deleteButton(c, m.seq) : null;
  // Who has it, in a group (in a direct chat the ticks say it all).
  const info = entry.own && c.kind === "group" && m.seq && m.kind === "text" && !entry.pending
    ? h("button", { type: "button", class: "msg-info", title: "Message info", "aria-label": "Message info", onclick: () => showMessageInfo(c, m.seq) },
      icon("info", { size: 16 }))
    : null;
  if (!react && !reply && !forward && !edit && !remove && !info) return null;
  return h("span", { class: "msg-actions" }, react, reply, forward, info, edit, remove);
}

// --- message info ----------------------------------------------------------------------------

let shownMessageInfo = null; // {c, seq, body}: the open "Message info" dialog, kept up to date by receipts

/** Who of a group has read my message at `seq`, who has it on a device, and who not yet, from the
 * members' watermarks (docs/protocol.md: message.status), updated live while the dialog is open. */
function showMessageInfo(c, seq) {
  const body = h("div", { class: "message-info-body" });
  shownMessageInfo = { c, seq, body };
  renderMessageInfo();
  modal("Message info", { onClose: () => { shownMessageInfo = null; } }, () => [
    body, h("div", { class: "button-row forward-buttons" }, h("button", { type: "submit", class: "button", text: "Close" }))]);
}

/** A modal dialog titled `title`, its form's contents made by `build(dialog)`; Escape or a submit
 * without preventDefault closes it. Gone when closed, the focus back where it was. */
function modal(title, { onClose = null, form = {} } = {}, build) {
  const opener = document.activeElement;
  const titleId = `dialog-title-${uuid4().slice(0, 8)}`;
  const dialog = h("dialog", { class: "forward-dialog", "aria-labelledby": titleId });
  const content = h("form", { method: "dialog", class: "forward-form", ...form }, h("h2", { id: titleId, text: title }));
  append(content, build(dialog));
  dialog.append(content);
  dialog.addEventListener("close", () => {
    dialog.remove();
    if (onClose) onClose();
    if (opener && opener.isConnected) opener.focus();
  });
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}

function renderMessageInfo() {
  if (!shownMessageInfo) return;
  const { c, seq, body } = shownMessageInfo;
  // Those it was sent to: not someone added since, whose history starts after it.
  const others = c.members.filter((x) => x.user.id !== me.id && (x.joined_after_seq || 0) < seq);
  const byName = (a, b) => nameOf(a.user.id).localeCompare(nameOf(b.user.id));
  const groups = [
    ["Read by", others.filter((x) => x.read_seq >= seq)],
    ["Delivered to", others.filter((x) => x.read_seq < seq && x.delivered_seq >= seq)],
    ["Not delivered yet", others.filter((x) => x.delivered_seq < seq)],
  ];
  clear(body);
  for (const [label, people] of groups) {
    if (!people.length) continue;
    body.append(h("section", { class: "message-info-group", "aria-label": label },
      h("h3", { text: `${label} (${people.length})` }),
      h("ul", {}, people.sort(byName).map((x) => h("li", {}, avatar(nameOf(x.user.id), { id: x.user.id, size: "sm", photo: photoOf(x.user.id) }),
        h("span", { class: "message-info-name", text: nameOf(x.user.id) }))))));
  }
  if (!others.length) body.append(h("p", { class: "muted", text: "Nobody else is in this group." }));
}

// --- forwarding ------------------------------------------------------------------------------

/** Ask which chats to send the message at `seq` on to (a modal dialog), then forward it to each
 * (POST conversations/{id}/forward): a copy of mine there, marked "Forwarded". With one chat
 * chosen, that chat opens, as WhatsApp does; a chat it could not go to says why and stays chosen. */
function askForward(c, seq) {
  const list = h("div", { class: "checklist forward-list", role: "group", "aria-label": "Chats" });
  for (const target of sortedConversations()) {
    if (target.left) continue;
    const id = `fw-${target.id}-${uuid4().slice(0, 4)}`;
    list.append(h("div", { class: "check-row" },
      h("input", { type: "checkbox", id, value: target.id }),
      h("label", { for: id }, conversationAvatar(target, { size: "sm" }), h("span", { class: "person-name", text: titleOf(target) }))));
  }
  const error = formError();
  const send = h("button", { type: "submit", class: "button button-primary", text: "Forward" });
  const dialog = modal("Forward message to", { form: { novalidate: true } }, (opened) => [list, error,
    h("div", { class: "button-row forward-buttons" },
      h("button", { type: "button", class: "button", text: "Cancel", onclick: () => opened.close() }), send)]);
  const form = dialog.querySelector("form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const chosen = [...list.querySelectorAll("input:checked")];
    if (!chosen.length) return showError(error, "Choose a chat to forward it to.");
    send.disabled = true;
    const failed = [];
    for (const box of chosen) {
      const target = state.conversations.get(Number(box.value));
      try {
        const copy = await api.post(`conversations/${target.id}/forward`, { client_id: uuid4(), forward: { conversation: c.id, seq } });
        addMessage(target, copy);
        box.checked = false;
      } catch (exc) {
        failed.push(`${titleOf(target)}: ${errorText(exc)}`);
      }
    }
    send.disabled = false;
    if (failed.length) return showError(error, `Not forwarded to ${failed.join("; ")}`);
    dialog.close();
    if (chosen.length === 1) openConversation(Number(chosen[0].value));
  });
}

// --- reactions -------------------------------------------------------------------------------

// The palette's choices, as WhatsApp offers them first; the server takes any single emoji.
const REACTIONS = ["👍", "❤️", "😂", "😮", "😢", "🙏"];

/** A message's reactions (one per person), as the server lists them: oldest first. */
function reactionsOf(m) {
  return m.reactions || [];
}

function reactionsSig(m) {
  return reactionsOf(m).map((r) => `${r.user}:${r.emoji}`).join(",");
}

function myReaction(m) {
  const mine = reactionsOf(m).find((r) => r.user === me.id);
  return mine ? mine.emoji : null;
}

/** Open (or close) the palette of reactions under the message at `seq`; one at a time. */
function togglePalette(c, seq) {
  c.reactingTo = c.reactingTo === seq ? null : seq;
  renderMessages(c);
  if (c.reactingTo !== null) {
    const first = els.messagesInner.querySelector(`.msg[data-seq="${seq}"] .reaction-palette button`);
    if (first) first.focus({ preventScroll: true });
  }
}

/** React to the message at `seq` with `emoji`, or take my reaction away when it is that one already. */
async function react(c, seq, emoji) {
  c.reactingTo = null;
  const held = c.msgs.get(seq);
  const removing = held && myReaction(held) === emoji;
  try {
    if (removing) {
      await api.delete(`conversations/${c.id}/messages/${seq}/reaction`);
      setReaction(c, seq, me.id, null);
    } else {
      const message = await api.put(`conversations/${c.id}/messages/${seq}/reaction`, { emoji });
      const now = c.msgs.get(seq);
      if (now) c.msgs.set(seq, { ...now, reactions: message.reactions });
    }
    c.reactionErrors.delete(seq);
  } catch (exc) {
    c.reactionErrors.set(seq, exc.message || "The reaction could not be sent.");
  }
  renderMessages(c);
}

/** `message.reaction`: someone (perhaps me, on another device) reacted, or took theirs away. */
function onReaction(ev) {
  const c = state.conversations.get(ev.conversation);
  if (!c) return;
  if (setReaction(c, ev.seq, ev.user, ev.emoji)) renderMessages(c);
}

/** Put `user`'s reaction to the message at `seq` (null: none); a message not held here has its
 * reactions in the history when it is loaded. Whether anything changed. */
function setReaction(c, seq, user, emoji) {
  const held = c.msgs.get(seq);
  if (!held || held.kind !== "text") return false;
  const reactions = reactionsOf(held);
  const at = reactions.findIndex((r) => r.user === user);
  if (at >= 0 ? reactions[at].emoji === emoji : emoji === null) return false;
  const next = reactions.filter((r) => r.user !== user);
  if (emoji !== null) {
    if (at >= 0) next.splice(at, 0, { emoji, user }); // replaced in its place, as the server keeps it
    else next.push({ emoji, user });
  }
  c.msgs.set(seq, { ...held, reactions: next });
  return true;
}

/** The chip under a bubble: each emoji once, in the order first used, and how many reacted; who
 * reacted with what in its title and label. */
function reactionChip(m) {
  const reactions = reactionsOf(m);
  if (!reactions.length || m.kind !== "text") return null;
  const byEmoji = new Map();
  for (const r of reactions) byEmoji.set(r.emoji, [...(byEmoji.get(r.emoji) || []), nameOf(r.user)]);
  const who = [...byEmoji].map(([emoji, names]) => `${emoji} ${names.join(", ")}`).join("; ");
  return h("div", { class: "msg-reactions", role: "img", title: who, "aria-label": `Reactions: ${who}` },
    h("span", { class: "msg-reactions-emojis", text: [...byEmoji.keys()].join("") }),
    h("span", { class: "msg-reactions-count", text: String(reactions.length) }));
}

function reactionPalette(c, m) {
  const mine = myReaction(m);
  return h("div", { class: "reaction-palette", role: "group", "aria-label": "Choose a reaction" },
    REACTIONS.map((emoji) => h("button", {
      type: "button", class: `reaction-choice${emoji === mine ? " reaction-mine" : ""}`, text: emoji,
      title: emoji === mine ? "Remove your reaction" : `React with ${emoji}`,
      "aria-label": emoji === mine ? `Remove your reaction ${emoji}` : `React with ${emoji}`,
      "aria-pressed": String(emoji === mine), onclick: () => react(c, m.seq, emoji),
    })));
}

// --- replies ---------------------------------------------------------------------------------

/** What a message's media, or its text, says in a quote or a preview. */
function snippetOf(m) {
  return m.media ? `${mediaLabel(m.media)}${m.text ? `: ${m.text}` : ""}` : m.text;
}

/** The message at `seq` as a quote shows it: its state ("shown", "removed", "loading", "missing":
 * not one this user can see), author and text, and a signature that changes when any of it does. */
function quoteOf(c, seq) {
  let m = c.msgs.get(seq);
  if (m === undefined) m = c.quoted.get(seq);
  if (m === undefined) return { state: "loading", seq, sig: `${seq}|loading` };
  if (m === null) return { state: "missing", seq, sig: `${seq}|missing` };
  if (c.removed.has(seq) && m.kind !== "removed") m = { ...m, kind: "removed", text: "", media: null, event: c.removed.get(seq) };
  const author = nameOf(m.sender);
  const [state, text] = m.kind === "removed" ? ["removed", removedText(m)] : ["shown", snippetOf(m)];
  return { state, seq, author, own: m.sender === me.id, text, sig: `${seq}|${state}|${author}|${text}` };
}

/** The quote a message shows above its own text, or null (none, or the message itself is gone). */
function quoteFor(c, m) {
  if (!m.reply_to || m.kind === "removed" || m.kind === "system") return null;
  return quoteOf(c, m.reply_to);
}

/** Fetch the one quoted message this page does not hold (GET messages?after_seq=seq-1&limit=1);
 * the rows quoting it show it once it is here. */
async function fetchQuoted(c, seq) {
  if (c.quoting.has(seq) || c.msgs.has(seq) || c.quoted.has(seq)) return;
  c.quoting.add(seq);
  try {
    const page = await api.messages(c.id, { after_seq: seq - 1, limit: 1 });
    const found = page.results[0];
    // The first message after seq-1 this user can see: another one if they joined after it.
    c.quoted.set(seq, found && found.seq === seq ? found : null);
  } catch (exc) {
    return; // not now (offline, say): the next render asks again
  } finally {
    c.quoting.delete(seq);
  }
  if (isOpen(c)) {
    renderMessages(c);
    renderReplyBar(c);
  }
  renderChatList(); // the preview of an edit's notice shows the message it names
}

function quoteContent(quote) {
  if (quote.state === "loading") return [h("span", { class: "quote-text", text: "Loading…" })];
  if (quote.state === "missing") return [h("span", { class: "quote-text quote-removed", text: "Original message not available" })];
  return [h("span", { class: `quote-author${quote.own ? " quote-author-own" : ""}`, text: quote.author }),
    h("span", { class: `quote-text${quote.state === "removed" ? " quote-removed" : ""}`, text: quote.text })];
}

/** The quote inside a reply's bubble: a button that takes you to the original. */
function quoteElement(c, quote) {
  return h("button", { type: "button", class: `msg-quote${quote.own ? " msg-quote-own" : ""}`, title: "Go to the original message",
    "aria-label": quote.author ? `Quoted message from ${quote.author}: ${quote.text}. Go to it` : "Quoted message. Go to it",
    onclick: () => jumpTo(c, quote.seq) }, quoteContent(quote));
}

/** Start writing a reply to the message at `seq`: the bar above the composer shows what it quotes. */
function startReply(c, seq) {
  stopEditing(c); // the composer is for the reply now, with what it held before the edit
  c.replyTo = seq;
  renderReplyBar(c);
  if (!els.composer.hidden) els.input.focus();
}

function cancelReply(c) {
  c.replyTo = null;
  renderReplyBar(c);
  if (!els.composer.hidden && (focusWasLost() || els.replyBar.contains(document.activeElement))) els.input.focus();
}

/** The seq the next message quotes, which it takes: the bar goes. */
function takeReply(c) {
  const seq = c.replyTo;
  c.replyTo = null;
  if (isOpen(c)) renderReplyBar(c);
  return seq;
}

function renderReplyBar(c = openChat()) {
  const bar = els.replyBar;
  // Set aside while a message is being edited: back, with what was typed for it, when that ends.
  const quote = c && isOpen(c) && c.replyTo && !c.editing && !els.composer.hidden ? quoteOf(c, c.replyTo) : null;
  if (quote && quote.state === "loading") fetchQuoted(c, c.replyTo);
  const sig = quote ? quote.sig : "";
  if (bar.dataset.sig === sig && bar.hidden === !quote) return; // as it is: keep the focus where it is
  bar.dataset.sig = sig;
  const hadFocus = bar.contains(document.activeElement);
  clear(bar);
  bar.hidden = !quote;
  if (!quote) return;
  append(bar, [
    h("div", { class: `reply-preview${quote.own ? " msg-quote-own" : ""}`, role: "status", "aria-label": `Replying to ${quote.author || "a message"}` },
      quoteContent(quote)),
    h("button", { type: "button", class: "icon-button reply-cancel", "aria-label": "Cancel reply", title: "Cancel reply (Esc)",
      onclick: () => cancelReply(c) }, icon("close", { size: 20 })),
  ]);
  if (hadFocus) bar.querySelector(".reply-cancel").focus();
}

// --- edits -----------------------------------------------------------------------------------

/** Edit my message at `seq` in the composer: its text goes there, what was typed kept aside. */
function startEdit(c, seq) {
  const m = c.msgs.get(seq);
  if (!m || !isOpen(c) || els.composer.hidden) return;
  c.editing = { seq, before: c.editing ? c.editing.before : els.input.value, saving: false, error: null };
  els.input.value = m.text;
  autosize();
  renderEditBar(c);
  renderReplyBar(c);
  renderMessages(c);
  els.input.focus();
  els.input.setSelectionRange(els.input.value.length, els.input.value.length);
}

/** Stop editing (cancelled, saved, or the message gone): the composer holds what it held before. */
function stopEditing(c) {
  if (!c || !c.editing) return;
  const { before } = c.editing;
  c.editing = null;
  if (!isOpen(c)) return;
  els.input.value = before;
  autosize();
  renderEditBar(c);
  renderReplyBar(c);
  renderMessages(c);
}

function cancelEdit(c) {
  const fromBar = els.editBar.contains(document.activeElement);
  stopEditing(c);
  if (!els.composer.hidden && (fromBar || focusWasLost())) els.input.focus();
}

/** Save the composer's text as the edited message's (PATCH); the edit shows at once, and on my
 * other devices and the others' when its notice reaches them. */
async function saveEdit(c) {
  const editing = c.editing;
  if (editing.saving) return;
  const m = c.msgs.get(editing.seq);
  const text = els.input.value;
  if (!m || m.kind !== "text") {
    stopEditing(c);
    return;
  }
  if (!text.trim() && !m.media) return; // a message that is only text keeps some (the server says so too)
  if (text === m.text) {
    stopEditing(c);
    return;
  }
  editing.saving = true;
  editing.error = null;
  renderEditBar(c);
  try {
    takeEdit(c, await api.patch(`conversations/${c.id}/messages/${editing.seq}`, { text }));
  } catch (exc) {
    editing.saving = false;
    editing.error = errorText(exc);
    if (c.editing === editing) renderEditBar(c);
    return;
  }
  if (c.editing === editing) stopEditing(c);
  renderConversationEverywhere(c);
  if (isOpen(c) && !els.composer.hidden && focusWasLost()) els.input.focus();
}

/** The bar above the composer while a message is edited: which one, and a cancel (x). */
function renderEditBar(c = openChat()) {
  const bar = els.editBar;
  const editing = c && isOpen(c) && c.editing && !els.composer.hidden ? c.editing : null;
  const m = editing ? c.msgs.get(editing.seq) : null;
  const text = m ? snippetOf(m) : "";
  const sig = editing ? `${editing.seq}|${editing.saving}|${editing.error || ""}|${text}` : "";
  if (bar.dataset.sig === sig && bar.hidden === !editing) return; // as it is: keep the focus where it is
  bar.dataset.sig = sig;
  const hadFocus = bar.contains(document.activeElement);
  clear(bar);
  bar.hidden = !editing;
  if (!editing) return;
  append(bar, [
    h("div", { class: "reply-preview msg-quote-own", role: "status", "aria-label": "Editing message" },
      h("span", { class: "quote-author quote-author-own", text: editing.saving ? "Saving…" : "Editing message" }),
      h("span", { class: "quote-text", text }),
      editing.error ? h("span", { class: "edit-error", role: "alert", text: editing.error }) : null),
    h("button", { type: "button", class: "icon-button reply-cancel", "aria-label": "Cancel editing", title: "Cancel editing (Esc)",
      onclick: () => cancelEdit(c) }, icon("close", { size: 20 })),
  ]);
  if (hadFocus) bar.querySelector(".reply-cancel").focus();
}

// Re-render when the next of my messages in the open chat can no longer be edited: its Edit goes.
let editExpiryTimer = null;

function scheduleEditExpiry(c) {
  clearTimeout(editExpiryTimer);
  const now = Date.now();
  let soonest = Infinity;
  for (const m of c.msgs.values()) {
    const ends = m.sender === me.id && m.kind === "text" ? time(m.created_at) + EDIT_SECONDS * 1000 : 0;
    if (ends > now && ends < soonest) soonest = ends;
  }
  if (soonest < Infinity) editExpiryTimer = setTimeout(() => renderMessages(c), soonest - now + 50);
}

/** Scroll to the message at `seq` and light it up for a moment, loading older history back to it
 * if this page does not hold it yet. */
async function jumpTo(c, seq) {
  if (c.quoted.get(seq) === null) return; // not one this user can see: nowhere to go
  if (!c.msgs.has(seq) && c.loaded && !c.loadingOlder) {
    c.loadingOlder = true;
    try {
      // One unbroken run of seqs from the quoted message to the newest (history pages go back
      // from the oldest held), at most 50 pages of 200.
      for (let round = 0; round < 50 && c.hasMoreBefore && minKey(c.msgs) > seq; round += 1) {
        const before = minKey(c.msgs);
        const page = await api.messages(c.id, before === Infinity ? { limit: 200 } : { before_seq: before, limit: 200 });
        for (const m of page.results) addMessage(c, m);
        c.hasMoreBefore = page.has_more;
        if (!page.results.length) break;
      }
    } catch (exc) {
      // Left as it is: clicking again tries again.
    } finally {
      c.loadingOlder = false;
    }
    if (isOpen(c)) renderMessages(c, { keepTop: true });
  }
  if (!isOpen(c)) return;
  const row = els.messagesInner.querySelector(`.msg[data-seq="${seq}"]`);
  if (!row) return;
  row.scrollIntoView({ block: "center", behavior: window.matchMedia("(prefers-reduced-motion: reduce)").matches ? "auto" : "smooth" });
  row.classList.remove("msg-highlight");
  void row.offsetWidth; // restart the animation when the same message is jumped to again
  row.classList.add("msg-highlight");
  clearTimeout(row.highlightTimer);
  row.highlightTimer = setTimeout(() => row.classList.remove("msg-highlight"), 2000);
  row.tabIndex = -1;
  row.focus({ preventScroll: true });
}

function messageElement(c, m, { own, first, status, pending, quote }) {
  if (m.kind === "system") {
    return h("div", { class: "msg msg-system", dataset: { seq: m.seq } }, h("span", { class: "system-text", text: m.text }));
  }
  const classes = ["msg", own ? "msg-out" : "msg-in"];
  if (first) classes.push("msg-first");
  if (own) classes.push(`msg-${status}`);
  const author = !own && c.kind === "group" && first
    ? h("div", { class: "msg-author" }, h("span", { text: nameOf(m.sender) }), businessBadge(m.sender))
    : null;
  const edited = m.edited_at && m.kind === "text";
  if (edited) classes.push("msg-edited");
  if (c.editing && c.editing.seq === m.seq) classes.push("msg-being-edited");
  const meta = h("span", { class: "msg-meta" },
    edited ? h("span", { class: "msg-edited-label", title: `Edited ${fmt.clock(m.edited_at)}`, text: "Edited" }) : null,
    h("time", { datetime: m.created_at, text: fmt.clock(m.created_at) }),
    own ? statusIcon(status) : null);
  const content = m.kind === "removed"
    ? [h("span", { class: "msg-text msg-removed", text: removedText(m) })]
    : [m.media ? mediaElement(m.media) : null, m.text ? h("span", { class: "msg-text", text: m.text }) : null];
  const actions = messageActions(c, m, { own, pending });
  const remove = actions && actions.querySelector(".msg-delete");
  const forwarded = m.forwarded && m.kind === "text"
    ? h("div", { class: "msg-forwarded" }, icon("forward", { size: 14 }), h("span", { text: "Forwarded" }))
    : null;
  const bubble = h("div", { class: "bubble" }, author, forwarded, quote ? quoteElement(c, quote) : null, ...content, meta, actions);
  const row = h("div", { class: classes.join(" "), dataset: { seq: m.seq ?? "", clientId: m.client_id || "", status: own ? status : "" } },
    bubble, reactionChip(m), actions && actions.querySelector(".msg-react") && c.reactingTo === m.seq ? reactionPalette(c, m) : null);
  if (remove && c.confirmDelete === m.seq) {
    row.append(h("div", { class: "delete-confirm", role: "group", "aria-label": "Delete this message for everyone?" },
      h("span", { text: "Delete for everyone?" }),
      h("button", { type: "button", class: "button button-small button-danger", text: "Delete", onclick: () => deleteForEveryone(c, m.seq) }),
      h("button", { type: "button", class: "button button-small", text: "Cancel", onclick: () => confirmDelete(c, null, { focus: "trash" }) })));
  }
  const deleteError = m.seq ? c.deleteErrors.get(m.seq) : null;
  if (deleteError) row.append(h("div", { class: "msg-failed-note", role: "alert" }, h("span", { class: "msg-failed-reason", text: deleteError })));
  const reactionError = m.seq ? c.reactionErrors.get(m.seq) : null;
  if (reactionError) row.append(h("div", { class: "msg-failed-note", role: "alert" }, h("span", { class: "msg-failed-reason", text: reactionError })));
  if (status === "failed" && pending) {
    row.append(h("div", { class: "msg-failed-note" },
      h("span", { class: "msg-failed-reason", text: pending.error || "Not sent." }),
      h("button", { type: "button", class: "retry-button", onclick: () => retryFromButton(c, m.client_id) }, icon("retry", { size: 16 }), "Retry")));
  }
  return row;
}

/** Reconcile the message list with the model, keyed, so unchanged rows stay put. */
function renderMessages(c, { toBottom = false, keepTop = false } = {}) {
  if (!isOpen(c)) return;
  const box = els.messages;
  const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  const oldHeight = box.scrollHeight;
  const oldTop = box.scrollTop;
  const items = messageItems(c);
  const wanted = new Set(items.map((i) => i.key));
  for (const [key, el] of messageNodes) if (!wanted.has(key)) { el.remove(); messageNodes.delete(key); }
  let cursor = els.messagesInner.firstChild;
  for (const item of items) {
    let el = messageNodes.get(item.key);
    if (el && el.dataset.sig !== item.sig && canRetick(el, item)) {
      retick(el, item);
      el.dataset.sig = item.sig;
    } else if (!el || el.dataset.sig !== item.sig) {
      const fresh = item.build();
      fresh.dataset.sig = item.sig;
      fresh.dataset.shape = item.shape || "";
      if (el) {
        if (cursor === el) cursor = fresh;
        el.replaceWith(fresh);
      }
      el = fresh;
      messageNodes.set(item.key, el);
    }
    if (el !== cursor) els.messagesInner.insertBefore(el, cursor);
    else cursor = cursor.nextSibling;
  }
  if (keepTop) box.scrollTop = oldTop + (box.scrollHeight - oldHeight);
  else if (toBottom || nearBottom) box.scrollTop = box.scrollHeight;
  if (c.loaded && c.hasMoreBefore && box.scrollTop < 150 && box.scrollHeight <= box.clientHeight + 150) loadOlder(c);
  scheduleEditExpiry(c);
}

function renderConversationEverywhere(c, { messages = true } = {}) {
  renderChatList();
  if (isOpen(c)) {
    renderHeader(c); // and the reply bar
    if (messages) renderMessages(c);
  }
  if (isOpen(c) && !els.infoDrawer.hidden && els.infoDrawer.dataset.conversation === String(c.id) && messages) refreshInfo(c);
}

async function openConversation(id, { focus = true } = {}) {
  const c = state.conversations.get(id);
  if (!c) return;
  const previous = openChat();
  if (previous) {
    stopEditing(previous); // its composer goes back to what was typed there
    setDraft(previous, els.input.value);
  }
  state.confirmDeleteChat = null;
  // A recording would go on out of sight, the microphone live: switching chats cancels it.
  if (previous && previous !== c) stopRecording(previous, false);
  state.openId = id;
  history.replaceState(null, "", `#chat-${id}`);
  document.body.classList.add("chat-open");
  els.welcome.hidden = true;
  els.conversation.hidden = false;
  closeInfo();
  closeSearch();
  messageNodes.clear();
  clear(els.messagesInner);
  els.input.value = c.draft || "";
  autosize();
  renderStaged();
  renderHeader(c); // and the reply bar of this chat
  renderChatList();
  renderMessages(c, { toBottom: true });
  if (focus && !els.composer.hidden) els.input.focus();
  try {
    if (!c.loaded) await loadLatest(c);
    else await fillFrom(c, () => contiguousTop(c));
  } catch (exc) {
    if (exc instanceof ApiError && exc.status === 404) forget(c);
  }
  if (!isOpen(c)) return;
  renderHeader(c);
  renderMessages(c, { toBottom: true });
  maybeRead(c);
  renderChatList();
}

function closeConversation() {
  const c = openChat();
  if (c) {
    stopEditing(c);
    setDraft(c, els.input.value);
    stopRecording(c, false);
  }
  state.openId = null;
  renderStaged();
  renderReplyBar(null);
  renderEditBar(null);
  history.replaceState(null, "", location.pathname);
  document.body.classList.remove("chat-open");
  els.conversation.hidden = true;
  els.welcome.hidden = false;
  closeInfo();
  closeSearch();
  renderChatList();
  const item = c && listItems.get(c.id);
  if (item) item.firstChild.focus();
}

// --- the composer ----------------------------------------------------------------------------

// --- media: attach, record, play -------------------------------------------------------------

function clock(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "0:00";
  const whole = Math.floor(seconds);
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

/** A voice message: play/pause, a seek bar and the time (the file is fetched with Range as it plays). */
function voicePlayer(media) {
  const audio = h("audio", { src: media.url, preload: "metadata" });
  const button = h("button", { type: "button", class: "icon-button voice-play", "aria-label": "Play voice message" }, icon("play"));
  const seek = h("input", { type: "range", class: "voice-seek", min: "0", max: "1000", value: "0", step: "1", "aria-label": "Seek voice message" });
  const time = h("span", { class: "voice-time", text: clock(media.duration) });
  let duration = media.duration || NaN;
  const known = () => Number.isFinite(duration) && duration > 0;
  const show = () => {
    time.textContent = audio.paused && audio.currentTime === 0 ? clock(duration) : `${clock(audio.currentTime)} / ${clock(duration)}`;
    if (known()) seek.value = String(Math.round((audio.currentTime / duration) * 1000));
  };
  const measure = () => {
    if (Number.isFinite(audio.duration) && audio.duration > 0) {
      duration = audio.duration;
      show();
    } else if (audio.duration === Infinity && !audio.dataset.probing) {
      // MediaRecorder's WebM has no duration in its header: seek far past the end to learn it.
      audio.dataset.probing = "1";
      audio.currentTime = 1e7;
    }
  };
  audio.addEventListener("loadedmetadata", measure);
  audio.addEventListener("durationchange", () => {
    measure();
    if (audio.dataset.probing === "1" && Number.isFinite(audio.duration)) {
      audio.dataset.probing = "done";
      audio.currentTime = 0;
    }
  });
  audio.addEventListener("timeupdate", show);
  audio.addEventListener("play", () => { button.replaceChildren(icon("pause")); button.setAttribute("aria-label", "Pause voice message"); });
  const paused = () => { button.replaceChildren(icon("play")); button.setAttribute("aria-label", "Play voice message"); show(); };
  audio.addEventListener("pause", paused);
  audio.addEventListener("ended", paused);
  button.addEventListener("click", () => (audio.paused ? audio.play().catch(() => {}) : audio.pause()));
  seek.addEventListener("input", () => { if (known()) audio.currentTime = (Number(seek.value) / 1000) * duration; });
  return h("div", { class: "msg-media msg-voice", role: "group", "aria-label": "Voice message" }, button, seek, time, audio);
}

// An attachment belongs to the chat it was chosen in, as a draft does: c.staged is kept there while
// another chat is open, and shown and sent only there. It is { file, kind, url, uploading, progress,
// error }, or { recorder, ... } while recording.

function kindOf(file) {
  const type = file.type || "";
  if (/^image\/(jpeg|png|webp)$/.test(type)) return "image";
  if (/^video\/(mp4|webm)$/.test(type)) return "video";
  return "document";
}

function renderStaged() {
  const panel = els.attachPanel;
  const c = openChat();
  const staged = c && c.staged;
  clear(panel);
  panel.hidden = !staged;
  if (!staged) return;
  let preview;
  if (staged.recorder) {
    preview = h("span", { class: "attach-recording", role: "status", text: `Recording… ${clock(staged.elapsed || 0)}` });
  } else if (staged.kind === "image") {
    preview = h("img", { class: "attach-preview", src: staged.url, alt: "Photo to send" });
  } else if (staged.kind === "video") {
    preview = h("video", { class: "attach-preview", src: staged.url, muted: true, controls: true, "aria-label": "Video to send" });
  } else if (staged.kind === "voice") {
    preview = h("span", { class: "attach-name", text: "Voice message" });
  } else {
    preview = h("span", { class: "attach-name", text: `${staged.file.name} (${Math.max(1, Math.round(staged.file.size / 1024))} KB)` });
  }
  const progress = staged.uploading
    ? h("progress", { class: "attach-progress", max: "100", value: String(Math.round((staged.progress || 0) * 100)), "aria-label": "Upload progress" })
    : null;
  const error = staged.error ? h("span", { class: "attach-error", role: "alert", text: staged.error }) : null;
  const actions = staged.recorder
    ? [h("button", { type: "button", class: "button button-primary", onclick: () => stopRecording(c, true), text: "Stop and send" }),
       h("button", { type: "button", class: "button", onclick: () => stopRecording(c, false), text: "Cancel" })]
    : [h("button", { type: "button", class: "button", onclick: () => unstage(c), disabled: staged.uploading, text: "Cancel" })];
  append(panel, [preview, progress, error, h("span", { class: "attach-actions" }, actions)]);
}

function unstage(c) {
  if (c.staged && c.staged.url) URL.revokeObjectURL(c.staged.url);
  c.staged = null;
  if (isOpen(c)) renderStaged();
}

function stage(c, file, kind = kindOf(file)) {
  unstage(c);
  c.staged = { file, kind, url: kind === "image" || kind === "video" ? URL.createObjectURL(file) : null, uploading: false, progress: 0 };
  renderStaged();
  els.input.focus();
}

/** Upload c's attachment and send it to c, whichever chat is open by the time the upload ends. */
async function sendStaged(c, caption) {
  const item = c.staged;
  item.uploading = true;
  item.error = null;
  // What it replies to is decided now, as its caption is: another reply may be started meanwhile.
  const replyTo = takeReply(c);
  if (item.kind !== "voice") {
    // The caption leaves the composer now, as a text does when sent: cleared when the upload ends,
    // the composer could by then hold what is being written in another chat.
    if (isOpen(c)) {
      els.input.value = "";
      autosize();
    }
    setDraft(c, "");
  }
  renderStaged();
  try {
    const media = await api.upload(item.file, item.kind, (fraction) => {
      item.progress = fraction;
      const bar = isOpen(c) && c.staged === item ? els.attachPanel.querySelector("progress") : null;
      if (bar) bar.value = Math.round(fraction * 100);
    });
    if (c.staged === item) unstage(c);
    sendText(c, item.kind === "voice" ? "" : caption, media, replyTo);
  } catch (exc) {
    item.uploading = false;
    item.error = errorText(exc);
    giveCaptionBack(c, item.kind === "voice" ? "" : caption);
    if (replyTo && !c.replyTo) {
      c.replyTo = replyTo; // for the next try, as the caption is
      if (isOpen(c)) renderReplyBar(c);
    }
    if (c.staged === item && isOpen(c)) renderStaged();
  }
}

/** After a failed upload, the caption goes back where it was written, for another try, unless
 * something else has been written there meanwhile. */
function giveCaptionBack(c, caption) {
  if (!caption) return;
  if (isOpen(c)) {
    if (els.input.value) return;
    els.input.value = caption;
    autosize();
    setDraft(c, caption);
  } else if (!c.draft) {
    setDraft(c, caption);
    renderChatList();
  }
}

els.attachButton.addEventListener("click", () => els.attachInput.click());
els.attachInput.addEventListener("change", () => {
  const file = els.attachInput.files && els.attachInput.files[0];
  els.attachInput.value = ""; // choosing the same file again, in this chat or another, is a change too
  const c = openChat();
  if (file && c) stage(c, file);
});

const RECORDING_TYPES = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/mp4"];

async function startRecording(c) {
  if (c.staged) return;
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (exc) {
    c.staged = { error: "The microphone is not available.", recorder: null, uploading: false };
    renderStaged();
    return;
  }
  // Another chat opened while the browser asked for the microphone: no recording out of sight.
  if (!isOpen(c) || c.staged) {
    stream.getTracks().forEach((track) => track.stop());
    return;
  }
  const mimeType = RECORDING_TYPES.find((type) => window.MediaRecorder && MediaRecorder.isTypeSupported(type));
  const recorder = new MediaRecorder(stream, mimeType ? { mimeType } : {});
  const chunks = [];
  const started = Date.now();
  const item = { recorder, stream, chunks, elapsed: 0, uploading: false, send: false };
  c.staged = item;
  recorder.addEventListener("dataavailable", (event) => { if (event.data.size) chunks.push(event.data); });
  recorder.addEventListener("stop", () => {
    stream.getTracks().forEach((track) => track.stop());
    clearInterval(item.ticker);
    if (c.staged !== item) return;
    if (!item.send || !chunks.length) {
      unstage(c);
      return;
    }
    const type = (recorder.mimeType || "audio/webm").split(";")[0];
    const ext = type.includes("ogg") ? "ogg" : type.includes("mp4") ? "m4a" : "webm";
    c.staged = { file: new File(chunks, `voice.${ext}`, { type }), kind: "voice", url: null, uploading: false, progress: 0 };
    sendStaged(c, "");
  });
  item.ticker = setInterval(() => {
    item.elapsed = (Date.now() - started) / 1000;
    const label = isOpen(c) ? els.attachPanel.querySelector(".attach-recording") : null;
    if (label) label.textContent = `Recording… ${clock(item.elapsed)}`;
  }, 250);
  recorder.start(250);
  renderStaged();
}

function stopRecording(c, send) {
  if (!c.staged || !c.staged.recorder) return;
  c.staged.send = send;
  c.staged.recorder.stop();
}

els.recordButton.addEventListener("click", () => {
  const c = openChat();
  if (!c) return;
  if (c.staged && c.staged.recorder) stopRecording(c, true);
  else if (!c.staged) startRecording(c);
  else if (c.staged.error && !c.staged.file) unstage(c);
});

/** What is typed in c's composer and not sent, kept across reloads (drafts.js). */
function setDraft(c, text) {
  c.draft = text;
  drafts.set(c.id, text);
}

function autosize() {
  els.input.style.height = "auto";
  els.input.style.height = `${Math.min(els.input.scrollHeight, 160)}px`;
}

els.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const c = openChat();
  if (!c) return;
  if (c.editing) {
    saveEdit(c);
    return;
  }
  const text = els.input.value;
  const staged = c.staged;
  if (staged && staged.file && !staged.uploading) {
    sendStaged(c, text);
    return;
  }
  if (!text.trim() || (staged && (staged.file || staged.recorder))) return;
  els.input.value = "";
  setDraft(c, "");
  autosize();
  sendText(c, text);
  els.input.focus();
});

els.input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    els.composer.requestSubmit();
  }
});

els.input.addEventListener("input", () => {
  autosize();
  const c = state.conversations.get(state.openId);
  // Kept as it is typed: a reload loses nothing. An edit is no draft: that stays what was typed before.
  if (c && !c.editing) setDraft(c, els.input.value);
  const now = Date.now();
  // Per conversation: typing in one chat says nothing about another, so it must not hold back the
  // first "typing" of the chat switched to.
  if (c && !c.editing && els.input.value.trim() && now - c.lastTypingSent > TYPING_SEND_EVERY_MS) {
    if (conn.send({ type: "typing", conversation: c.id })) c.lastTypingSent = now;
  }
});

els.messages.addEventListener("scroll", () => {
  const c = state.conversations.get(state.openId);
  if (c && els.messages.scrollTop < 150) loadOlder(c);
});

// --- drawers: new chat, new group, profile, conversation info --------------------------------

function drawerFrame(container, title, { onClose, closeLabel = "Close" }) {
  clear(container);
  const heading = h("h2", { id: `${container.id}-title`, text: title });
  container.setAttribute("aria-labelledby", heading.id);
  const header = h("header", { class: "drawer-header" },
    h("button", { type: "button", class: "icon-button", "aria-label": closeLabel, onclick: onClose, dataset: { keep: "close" } }, icon(container === els.sideDrawer ? "back" : "close")),
    heading);
  const body = h("div", { class: "drawer-body" });
  container.append(header, body);
  container.hidden = false;
  return body;
}

let sideOpener = null;

function openSide(title, build) {
  if (els.sideDrawer.hidden) sideOpener = document.activeElement;
  const body = drawerFrame(els.sideDrawer, title, { onClose: closeSide, closeLabel: "Back" });
  els.sideDrawer.dataset.panel = title;
  build(body);
  const first = body.querySelector("input:not([hidden]), textarea, select");
  if (first) first.focus();
}

function closeSide() {
  const hadFocus = els.sideDrawer.contains(document.activeElement);
  els.sideDrawer.hidden = true;
  clear(els.sideDrawer);
  if (hadFocus && sideOpener && sideOpener.isConnected) sideOpener.focus();
  sideOpener = null;
}

function field(label, attrs = {}) {
  const id = `f-${uuid4().slice(0, 8)}`;
  const input = h("input", { id, type: "text", ...attrs });
  return { input, el: h("div", { class: "field" }, h("label", { for: id, text: label }), input) };
}

function formError() {
  return h("p", { class: "form-error", role: "alert", hidden: true });
}

function showError(el, exc) {
  el.textContent = typeof exc === "string" ? exc : errorText(exc);
  el.hidden = false;
}

function personRow(user, { action = null, extra = null } = {}) {
  return h("div", { class: "person-row" },
    avatar(user.id === me.id ? me.display_name : nameOf(user.id), { id: user.id, photo: photoOf(user.id) }),
    h("span", { class: "person-text" },
      h("span", { class: "person-name-row" },
        h("span", { class: "person-name", text: nameOf(user.id) === "You" ? `${me.display_name} (you)` : nameOf(user.id) }),
        businessBadge(user.id)),
      h("span", { class: "person-sub", text: user.about || (user.is_business ? "Business account" : user.phone_number) || "" })),
    extra, action);
}

async function loadContacts() {
  try {
    state.contacts = await api.contacts();
    for (const contact of state.contacts) rememberUser(contact.user);
  } catch (exc) {
    // Contacts only improve names; the page works without them.
    return;
  }
  // A contact saved, renamed or removed changes names: the list, and the open chat's header and
  // authors too. (Not the info panel: a picker there may be adding to itself; it refreshes itself.)
  renderChatList();
  const open = openChat();
  if (open) {
    renderHeader(open);
    renderMessages(open);
  }
}

async function startDirect(body) {
  const p = await api.post("conversations", { kind: "direct", ...body });
  const c = upsertConversation(p);
  closeSide();
  renderChatList();
  await openConversation(c.id);
}

function openNewChat() {
  openSide("New chat", (body) => {
    const phone = field("Phone number", { autocomplete: "tel", inputmode: "tel", placeholder: "+12025550123", required: true });
    const name = field("Name (optional, for your contacts)", { autocomplete: "off", maxlength: 64 });
    const error = formError();
    const form = h("form", { class: "drawer-form", novalidate: true }, phone.el, name.el, error,
      h("div", { class: "button-row" },
        h("button", { type: "submit", class: "button button-primary", text: "Start chat" }),
        h("button", { type: "button", class: "button", text: "Save contact", onclick: saveContact })));
    // Nothing typed: say so in the page's words (the server's would name its field, "phone_number: …").
    const phoneMissing = () => {
      if (phone.input.value.trim()) return false;
      showError(error, "Type a phone number first.");
      phone.input.focus();
      return true;
    };
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.hidden = true;
      if (phoneMissing()) return;
      try {
        await startDirect({ phone_number: phone.input.value });
      } catch (exc) {
        showError(error, exc);
      }
    });
    async function saveContact() {
      error.hidden = true;
      if (phoneMissing()) return;
      try {
        // A blank name field means "no name given": sent as "", it would clear the name of someone saved already.
        const named = name.input.value.trim() ? { name: name.input.value } : {};
        const contact = await api.post("contacts", { phone_number: phone.input.value, ...named });
        rememberUser(contact.user);
        await loadContacts();
        phone.input.value = "";
        name.input.value = "";
        renderContacts();
        renderChatList();
      } catch (exc) {
        showError(error, exc);
      }
    }
    const list = h("div", { class: "person-list", role: "list", "aria-label": "Contacts" });
    function renderContacts() {
      clear(list);
      if (!state.contacts.length) list.append(h("p", { class: "muted small", text: "No contacts yet. Save someone's number above." }));
      for (const contact of state.contacts) {
        const open = h("button", { type: "button", class: "person-button", onclick: () => startDirect({ user_id: contact.user.id }).catch((exc) => showError(error, exc)) },
          personRow(contact.user));
        const remove = h("button", { type: "button", class: "icon-button small", "aria-label": `Remove contact ${nameOf(contact.user.id)}`,
          onclick: async () => {
            try {
              await api.delete(`contacts/${contact.id}`);
              await loadContacts();
              renderContacts();
              renderChatList();
            } catch (exc) {
              showError(error, exc);
            }
          } }, icon("close", { size: 18 }));
        list.append(h("div", { class: "person-item", role: "listitem" }, open, remove));
      }
    }
    renderContacts();
    append(body, [form, h("h3", { class: "section-title", text: "Contacts" }), list]);
  });
}

/** Everyone this page knows of (contacts, people in chats) except me, for member pickers: the
 * people a group may take. Not the members of a group I am no longer in: the server does not count
 * them as known any more, so naming them would be refused (docs/protocol.md). */
function knownPeople(exclude = new Set()) {
  const people = new Map();
  for (const contact of state.contacts) people.set(contact.user.id, contact.user);
  for (const c of state.conversations.values()) {
    if (c.left) continue;
    for (const m of c.members) people.set(m.user.id, state.users.get(m.user.id) || m.user);
  }
  people.delete(me.id);
  for (const id of exclude) people.delete(id);
  for (const [id, user] of people) if (user.is_business) people.delete(id); // apps chat one to one only
  return [...people.values()].sort((a, b) => nameOf(a.id).localeCompare(nameOf(b.id)));
}

/** A checklist of people plus "add by phone number"; returns {el, selected()}. */
function peoplePicker(candidates, legend) {
  const list = h("div", { class: "checklist" });
  function addChoice(user, checked = false) {
    const id = `p-${user.id}-${uuid4().slice(0, 4)}`;
    const box = h("input", { type: "checkbox", id, value: user.id, checked, dataset: { keep: `pick-${user.id}` } });
    list.append(h("div", { class: "check-row" }, box, h("label", { for: id }, avatar(nameOf(user.id), { id: user.id, size: "sm", photo: photoOf(user.id) }),
      h("span", { class: "person-text" },
        h("span", { class: "person-name-row" }, h("span", { class: "person-name", text: nameOf(user.id) }), businessBadge(user.id)),
        h("span", { class: "person-sub", text: (user.is_business ? "Business account" : user.phone_number) || "" })))));
  }
  for (const user of candidates) addChoice(user);
  const phone = field("Phone number", { autocomplete: "tel", inputmode: "tel", placeholder: "+12025550123", dataset: { keep: "pick-phone" } });
  const error = formError();
  const addButton = h("button", { type: "button", class: "button", text: "Add person", dataset: { keep: "pick-add-person" } });
  addButton.addEventListener("click", async () => {
    error.hidden = true;
    if (!phone.input.value.trim()) return showError(error, "Type a phone number first.");
    try {
      const contact = await api.post("contacts", { phone_number: phone.input.value });
      rememberUser(contact.user);
      await loadContacts();
      const existing = list.querySelector(`input[value="${contact.user.id}"]`);
      if (existing) existing.checked = true;
      else addChoice(contact.user, true);
      phone.input.value = "";
    } catch (exc) {
      showError(error, exc);
    }
  });
  phone.input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      addButton.click();
    }
  });
  const el = h("fieldset", { class: "picker" }, h("legend", { text: legend }),
    candidates.length ? null : h("p", { class: "muted small", text: "Add people by phone number." }),
    list, h("div", { class: "inline-add" }, phone.el, addButton), error);
  return { el, selected: () => [...list.querySelectorAll("input:checked")].map((box) => Number(box.value)) };
}

function openNewGroup() {
  openSide("New group", (body) => {
    const title = field("Group name", { maxlength: 100, required: true, autocomplete: "off" });
    const picker = peoplePicker(knownPeople(), "Members");
    const error = formError();
    const form = h("form", { class: "drawer-form", novalidate: true }, title.el, picker.el, error,
      h("button", { type: "submit", class: "button button-primary button-wide", text: "Create group" }));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.hidden = true;
      try {
        const p = await api.post("conversations", { kind: "group", title: title.input.value, member_ids: picker.selected() });
        const c = upsertConversation(p);
        closeSide();
        renderChatList();
        await openConversation(c.id);
      } catch (exc) {
        showError(error, exc);
      }
    });
    body.append(form);
  });
}

function renderProfileButton() {
  clear(els.profileButton);
  els.profileButton.append(avatar(me.display_name, { id: me.id, photo: me.photo }));
}

function openProfile() {
  openSide("Profile", (body) => {
    const name = field("Display name", { maxlength: 64, required: true, value: me.display_name, autocomplete: "name" });
    const about = field("About", { maxlength: 140, value: me.about || "", placeholder: "Hey there! I am using messenger." });
    const error = formError();
    const saved = h("p", { class: "form-ok", role: "status" });
    const picture = avatar(me.display_name, { id: me.id, size: "lg", photo: me.photo });
    const photo = photoControls({ label: "profile photo", current: me.photo, keep: "profile-photo", save: async (mediaId) => {
      const user = await api.patch("me", { photo_media_id: mediaId });
      Object.assign(me, user);
      rememberUser(user);
      renderProfileButton();
      avatar(me.display_name, { id: me.id, size: "lg", el: picture, photo: me.photo });
      photo.refresh(me.photo);
    } });
    // The picture and its buttons are not the form's: a photo is saved as it is chosen.
    const card = h("div", { class: "profile-card" }, picture, photo.el, h("p", { class: "profile-phone", text: me.phone_number }));
    const form = h("form", { class: "drawer-form", novalidate: true },
      name.el, about.el, error, saved,
      h("button", { type: "submit", class: "button button-primary", text: "Save" }));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.hidden = true;
      saved.textContent = "";
      try {
        const user = await api.patch("me", { display_name: name.input.value, about: about.input.value });
        Object.assign(me, user);
        rememberUser(user);
        renderProfileButton();
        avatar(me.display_name, { id: me.id, size: "lg", el: picture, photo: me.photo }); // the initials of the new name here too
        saved.textContent = "Saved.";
      } catch (exc) {
        showError(error, exc);
      }
    });
    const logout = document.querySelector(".logout-form").cloneNode(true);
    clear(logout.querySelector("button")).append("Log out");
    logout.querySelector("button").className = "button button-danger";
    logout.querySelector("button").removeAttribute("aria-label");
    const devices = devicesSection();
    append(body, [card, form, passwordForm(devices.refresh), devices.el, h("div", { class: "drawer-section" }, logout)]);
  });
}

/** "Change photo" and "Remove photo" under a profile's or a group's picture: an image chosen is
 * uploaded (POST media, as an image) and given to `save(mediaId)`; Remove saves null. Failures show
 * in `error` (a new one of its own in `el` if none is given). {el, refresh(photo)}. */
function photoControls({ label, current, save, keep, error = null }) {
  const ownError = error ? null : formError();
  const problem = error || ownError;
  const done = h("p", { class: "form-ok", role: "status" });
  const input = h("input", { type: "file", accept: "image/jpeg,image/png,image/webp", hidden: true, "aria-label": `Choose a ${label}` });
  const change = h("button", { type: "button", class: "button button-small", text: "Change photo", "aria-label": `Change ${label}`,
    dataset: { keep: `${keep}-change` }, onclick: () => input.click() });
  const remove = h("button", { type: "button", class: "button button-small", text: "Remove photo", "aria-label": `Remove ${label}`,
    dataset: { keep: `${keep}-remove` }, hidden: !current, onclick: () => run(null, "Photo removed.") });
  let busy = false;
  async function run(file, message) {
    if (busy) return;
    busy = true;
    problem.hidden = true;
    done.textContent = "";
    try {
      const mediaId = file ? (await api.upload(file, "image")).id : null;
      await save(mediaId);
      done.textContent = message;
    } catch (exc) {
      showError(problem, exc);
    } finally {
      busy = false;
      // Removed, its button is gone (or the panel was drawn again): the keyboard goes to Change.
      const live = document.querySelector(`[data-keep="${keep}-change"]`);
      if (live && focusWasLost()) live.focus();
    }
  }
  input.addEventListener("change", () => {
    const file = input.files[0];
    input.value = ""; // the same file chosen again is a change again
    if (file) run(file, "Photo updated.");
  });
  const refresh = (photo) => { remove.hidden = !photo; };
  return { el: h("div", { class: "photo-controls" }, h("div", { class: "photo-buttons" }, change, remove), input, ownError, done), refresh };
}

/** A new password, given the current one; the server logs out every device (this page stays). */
function passwordForm(refreshDevices) {
  const current = field("Current password", { type: "password", autocomplete: "current-password", required: true });
  const fresh = field("New password", { type: "password", autocomplete: "new-password", required: true, minlength: 8 });
  const error = formError();
  const done = h("p", { class: "form-ok", role: "status" });
  const form = h("form", { class: "drawer-section drawer-form", novalidate: true },
    h("h3", { class: "section-title", text: "Password" }), current.el, fresh.el, error, done,
    h("button", { type: "submit", class: "button", text: "Change password" }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    done.textContent = "";
    if (!current.input.value || !fresh.input.value) return showError(error, "Type your current password and a new one.");
    // The server gives this page's session a new key: its socket, on the old one, is replaced, and
    // the old one's end (session.revoked) is not a logout.
    renewingSession = true;
    try {
      const { devices_logged_out: count } = await api.post("me/password", { current_password: current.input.value, new_password: fresh.input.value });
      conn.renew();
      current.input.value = fresh.input.value = "";
      done.textContent = count ? `Password changed. ${count} device${count === 1 ? "" : "s"} logged out.` : "Password changed.";
      refreshDevices();
    } catch (exc) {
      showError(error, exc);
      if (conn.state === "stopped") leave("/login/"); // ended meanwhile for another reason
    } finally {
      renewingSession = false;
    }
  });
  return form;
}

/** The phones and apps logged in to this account (by token), each of which can be logged out from
 * here: {el, refresh}. */
function devicesSection() {
  const list = h("div", { class: "person-list", role: "list", "aria-label": "Devices" });
  const error = formError();
  const refresh = async () => {
    try {
      const devices = await api.get("me/devices");
      clear(list);
      if (!devices.length) list.append(h("p", { class: "muted small", text: "No phones or apps are logged in." }));
      for (const device of devices) {
        const name = device.name || "Unnamed device";
        const used = device.last_used_at || device.created_at;
        const out = h("button", { type: "button", class: "button button-small", "aria-label": `Log out ${name}`, text: "Log out", onclick: async () => {
          try {
            await api.delete(`me/devices/${device.id}`);
            refresh();
          } catch (exc) { showError(error, exc); }
        } });
        list.append(h("div", { class: "person-item", role: "listitem" },
          h("div", { class: "person-row" }, h("span", { class: "person-text" },
            h("span", { class: "person-name", text: name }),
            h("span", { class: "person-sub", text: `Last active: ${fmt.dayLabel(used)}, ${fmt.clock(used)}` })), out)));
      }
    } catch (exc) {
      showError(error, exc);
    }
  };
  refresh();
  return { el: h("div", { class: "drawer-section" }, h("h3", { class: "section-title", text: "Devices" }), list, error), refresh };
}

// --- searching the open chat -----------------------------------------------------------------

let searchRound = 0; // the newest search asked for: an older one's answer, arriving late, is dropped

/** The panel that searches the open chat's messages (GET conversations/{id}/search): each match with
 * who wrote it, when, and its text with the words marked; a click goes to it in the chat. */
function openSearch() {
  const c = openChat();
  if (!c) return;
  if (!els.infoDrawer.hidden) closeInfo();
  document.body.classList.add("search-open");
  els.searchDrawer.dataset.conversation = String(c.id);
  const body = drawerFrame(els.searchDrawer, "Search messages", { onClose: closeSearch, closeLabel: "Close search" });
  const input = h("input", { type: "search", placeholder: "Search…", autocomplete: "off", maxlength: 100, "aria-label": "Search messages in this chat" });
  const status = h("p", { class: "search-status muted small", role: "status" });
  const list = h("ul", { class: "search-results", "aria-label": "Messages found" });
  const more = h("button", { type: "button", class: "button button-small search-more", text: "Older matches", hidden: true });
  const ui = { input, status, list, more, before: null };
  let timer = null;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => runSearch(c, ui), 300);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault();
    clearTimeout(timer);
    runSearch(c, ui);
  });
  more.addEventListener("click", () => runSearch(c, ui, { older: true }));
  append(body, [h("div", { class: "search-field" }, input), status, list, more]);
  input.focus();
}

async function runSearch(c, ui, { older = false } = {}) {
  const query = ui.input.value.trim();
  const round = ++searchRound;
  if (!query) {
    clear(ui.list);
    ui.status.textContent = "";
    ui.more.hidden = true;
    return;
  }
  ui.status.textContent = "Searching…";
  try {
    const page = await api.get(`conversations/${c.id}/search`, { q: query, before_seq: older ? ui.before : undefined });
    if (round !== searchRound || els.searchDrawer.hidden || els.searchDrawer.dataset.conversation !== String(c.id)) return;
    if (!older) clear(ui.list);
    for (const m of page.results) ui.list.append(searchResult(c, m, query));
    ui.before = page.results.length ? page.results[page.results.length - 1].seq : ui.before;
    ui.more.hidden = !page.has_more;
    ui.status.textContent = ui.list.children.length ? "" : "No messages found";
  } catch (exc) {
    if (round === searchRound) ui.status.textContent = errorText(exc);
  }
}

function searchResult(c, m, query) {
  return h("li", {}, h("button", { type: "button", class: "search-result", onclick: () => {
    if (window.matchMedia("(max-width: 759px)").matches) closeSearch(); // the panel covers the chat there
    jumpTo(c, m.seq);
  } },
  h("span", { class: "search-result-top" },
    h("span", { class: "search-result-author", text: m.sender === me.id ? "You" : nameOf(m.sender) }),
    h("time", { datetime: m.created_at, text: fmt.listTime(m.created_at) })),
  h("span", { class: "search-result-text" }, marked(snippetOf(m), query))));
}

/** `text` as nodes, each occurrence of `query` (in any case) in a <mark>: never as HTML. */
function marked(text, query) {
  const lower = text.toLowerCase();
  const wanted = query.toLowerCase();
  // Lowercasing changes the length of a few letters (İ): then positions would not match, so no marks.
  if (lower.length !== text.length || !wanted) return [text];
  const parts = [];
  let at = 0;
  for (let found = lower.indexOf(wanted); found !== -1; found = lower.indexOf(wanted, at)) {
    if (found > at) parts.push(text.slice(at, found));
    parts.push(h("mark", { text: text.slice(found, found + wanted.length) }));
    at = found + wanted.length;
  }
  parts.push(text.slice(at));
  return parts;
}

function closeSearch() {
  if (els.searchDrawer.hidden) return;
  const hadFocus = els.searchDrawer.contains(document.activeElement);
  els.searchDrawer.hidden = true;
  document.body.classList.remove("search-open");
  clear(els.searchDrawer);
  searchRound += 1;
  if (hadFocus && !$("open-search").closest("[hidden]")) $("open-search").focus();
}

function closeInfo() {
  const hadFocus = els.infoDrawer.contains(document.activeElement);
  if (hadFocus) $("open-info").focus();
  els.infoDrawer.hidden = true;
  document.body.classList.remove("info-open");
  clear(els.infoDrawer);
  shownInfo = null;
}

function openInfo() {
  const c = state.conversations.get(state.openId);
  if (!c) return;
  closeSearch();
  els.infoDrawer.dataset.conversation = String(c.id);
  document.body.classList.add("info-open");
  renderInfo(c);
  const close = els.infoDrawer.querySelector("button");
  if (close) close.focus();
}

/** Block or unblock someone; rejects with the reason if that failed, for the caller to show. */
async function setBlocked(userId, blocked) {
  let failure = null;
  try {
    if (blocked) await api.post(`blocks/${userId}`);
    else await api.delete(`blocks/${userId}`);
    if (blocked) state.blocked.add(userId);
    else state.blocked.delete(userId);
    if (!blocked) state.unblockError = null;
  } catch (exc) {
    // Not blocked any more (unblocked from another device, say): what was asked for is so.
    if (exc instanceof ApiError && exc.status === 404 && !blocked) state.blocked.delete(userId);
    else failure = exc;
  }
  const c = openChat();
  if (c) {
    renderHeader(c);
    if (!els.infoDrawer.hidden) refreshInfo(c);
  }
  if (failure) throw failure;
}

// The info panel holds forms (an admin adding people, say): rebuilt at every message or receipt,
// it would lose what is typed there and the keyboard focus. It is rebuilt only when what it shows
// changes, and then its controls (marked data-keep) keep their values, the focus and the scroll.
let shownInfo = null; // {id, signature} of what the info panel shows

function infoSignature(c) {
  const person = (id) => {
    const user = state.users.get(id) || {};
    return [id, nameOf(id), user.about, user.phone_number, user.is_business, (photoOf(id) || {}).id];
  };
  if (c.kind === "direct") {
    const peer = peerOf(c);
    return JSON.stringify(peer ? [person(peer.id), state.blocked.has(peer.id), Boolean(contactOf(peer.id)), isMuted(c), c.muted_until, Boolean(c.choosingMute), c.pinned_at] : null);
  }
  const admin = c.role === "admin" && !c.left;
  const candidates = admin ? knownPeople(new Set(c.members.map((m) => m.user.id))).map((user) => person(user.id)) : null;
  return JSON.stringify([c.title, (c.photo || {}).id, c.role, c.left, me.display_name, c.members.map((m) => [...person(m.user.id), m.role]), candidates,
    isMuted(c), c.muted_until, Boolean(c.choosingMute), c.pinned_at]);
}

function refreshInfo(c) {
  if (!shownInfo || shownInfo.id !== c.id || shownInfo.signature !== infoSignature(c)) renderInfo(c);
}

function renderInfo(c) {
  const drawer = els.infoDrawer;
  const focused = drawer.contains(document.activeElement) ? document.activeElement.closest("[data-keep]") : null;
  const hadFocus = drawer.contains(document.activeElement);
  const sameConversation = shownInfo && shownInfo.id === c.id;
  const values = new Map([...drawer.querySelectorAll("input[data-keep]")]
    .map((input) => [input.dataset.keep, input.type === "checkbox" ? input.checked : input.value]));
  const oldBody = drawer.querySelector(".drawer-body");
  const scrollTop = oldBody ? oldBody.scrollTop : 0;

  buildInfo(c);
  shownInfo = { id: c.id, signature: infoSignature(c) };
  if (!sameConversation) return;

  for (const input of drawer.querySelectorAll("input[data-keep]")) {
    if (!values.has(input.dataset.keep)) continue;
    if (input.type === "checkbox") input.checked = values.get(input.dataset.keep);
    else input.value = values.get(input.dataset.keep);
  }
  const body = drawer.querySelector(".drawer-body");
  if (body) body.scrollTop = scrollTop;
  if (hadFocus) {
    // The same control if it is still there (Block is now Unblock, say), else the panel's close button.
    const again = (focused && drawer.querySelector(`[data-keep="${CSS.escape(focused.dataset.keep)}"]`))
      || drawer.querySelector('[data-keep="close"]');
    if (again) again.focus({ preventScroll: true });
  }
}

const MUTE_CHOICES = [["8 hours", 8 * 3600], ["1 week", 7 * 24 * 3600], ["Always", null]];

/** Mute notifications of the chat (for 8 hours, a week, or until unmuted) or unmute them; pin it or unpin it. */
function preferencesSection(c, error) {
  const muted = isMuted(c);
  const save = async (request) => {
    error.hidden = true;
    try {
      await request();
      c.choosingMute = false;
      await refreshConversation(c.id);
    } catch (exc) { showError(error, exc); }
  };
  const section = h("div", { class: "drawer-section actions" });
  if (muted) {
    append(section, [
      h("p", { class: "mute-state", text: c.muted_until ? `Muted until ${fmt.untilTime(c.muted_until)}` : "Muted" }),
      h("button", { type: "button", class: "action-row", dataset: { keep: "unmute" },
        onclick: () => save(() => api.delete(`conversations/${c.id}/mute`)) }, icon("bell"), "Unmute notifications"),
    ]);
  } else if (c.choosingMute) {
    const choices = h("div", { class: "mute-choices", role: "group", "aria-label": "Mute notifications for" },
      ...MUTE_CHOICES.map(([label, duration]) => h("button", { type: "button", class: "button button-small", text: label,
        dataset: { keep: `mute-${label}` }, onclick: () => save(() => api.put(`conversations/${c.id}/mute`, { duration })) })),
      h("button", { type: "button", class: "button button-small", text: "Cancel", dataset: { keep: "mute-cancel" },
        onclick: () => { c.choosingMute = false; refreshInfo(c); } }));
    append(section, [h("p", { class: "mute-state", text: "Mute notifications for…" }), choices]);
  } else {
    section.append(h("button", { type: "button", class: "action-row", dataset: { keep: "mute" },
      onclick: () => { c.choosingMute = true; refreshInfo(c); } }, icon("muted"), "Mute notifications"));
  }
  // Pinned or not: to the top of my list, on all my devices (at most 3; the server says so).
  section.append(h("button", { type: "button", class: "action-row", dataset: { keep: "pin" },
    onclick: () => save(() => (c.pinned_at ? api.delete(`conversations/${c.id}/pin`) : api.put(`conversations/${c.id}/pin`))) },
  icon("pin"), c.pinned_at ? "Unpin chat" : "Pin chat"));
  return section;
}

function buildInfo(c) {
  const title = c.kind === "group" ? "Group info" : "Contact info";
  const body = drawerFrame(els.infoDrawer, title, { onClose: closeInfo, closeLabel: "Close info" });
  const error = formError();
  if (c.kind === "direct") {
    const peer = peerOf(c);
    if (!peer) return;
    const blocked = state.blocked.has(peer.id);
    const actions = h("div", { class: "drawer-section actions" });
    if (!contactOf(peer.id)) {
      actions.append(h("button", { type: "button", class: "action-row", dataset: { keep: "add-contact" }, onclick: async () => {
        try {
          await api.post("contacts", { user_id: peer.id });
          await loadContacts();
          refreshInfo(c);
        } catch (exc) { showError(error, exc); }
      } }, icon("add"), "Add to contacts"));
    }
    actions.append(h("button", { type: "button", class: "action-row danger", dataset: { keep: "block" }, onclick: async () => {
      error.hidden = true;
      try {
        await setBlocked(peer.id, !blocked);
      } catch (exc) { showError(error, exc); }
    } }, icon("block"), blocked ? `Unblock ${nameOf(peer.id)}` : `Block ${nameOf(peer.id)}`));
    append(body, [
      h("div", { class: "info-card" }, avatar(nameOf(peer.id), { id: peer.id, size: "lg", photo: photoOf(peer.id) }),
        h("h3", { text: nameOf(peer.id) }), businessBadge(peer.id),
        h("p", { class: "muted", text: isBusiness(peer.id) ? "Business account" : peer.phone_number })),
      peer.about ? h("div", { class: "drawer-section" }, h("h4", { class: "section-title", text: "About" }), h("p", { text: peer.about })) : null,
      preferencesSection(c, error), actions, error,
    ]);
    return;
  }
  const admin = c.role === "admin" && !c.left;
  const members = h("div", { class: "person-list", role: "list", "aria-label": "Members" });
  // Out of the group (left, removed), I am no member of it: the list is of those still in it, as I last knew them.
  const current = c.left ? c.members.filter((m) => m.user.id !== me.id) : c.members;
  const sorted = [...current].sort((a, b) => (b.user.id === me.id) - (a.user.id === me.id) || nameOf(a.user.id).localeCompare(nameOf(b.user.id)));
  for (const m of sorted) {
    const badge = m.role === "admin" ? h("span", { class: "role-badge", text: "Group admin" }) : null;
    const remove = admin && m.user.id !== me.id
      ? h("button", { type: "button", class: "button button-small", "aria-label": `Remove ${nameOf(m.user.id)}`, text: "Remove", dataset: { keep: `remove-${m.user.id}` }, onclick: async () => {
        try {
          await api.delete(`conversations/${c.id}/members/${m.user.id}`);
          await refreshConversation(c.id);
        } catch (exc) { showError(error, exc); }
      } })
      : null;
    const makeAdmin = m.role !== "admin";
    const role = admin && m.user.id !== me.id
      ? h("button", { type: "button", class: "button button-small", "aria-label": `${makeAdmin ? "Make" : "Dismiss"} ${nameOf(m.user.id)} ${makeAdmin ? "group admin" : "as group admin"}`, text: makeAdmin ? "Make admin" : "Dismiss as admin", dataset: { keep: `role-${m.user.id}` }, onclick: async () => {
        try {
          await api.patch(`conversations/${c.id}/members/${m.user.id}`, { role: makeAdmin ? "admin" : "member" });
          await refreshConversation(c.id);
        } catch (exc) { showError(error, exc); }
      } })
      : null;
    const action = role ? h("span", { class: "person-actions" }, role, remove) : remove;
    members.append(h("div", { class: "person-item", role: "listitem" }, personRow(state.users.get(m.user.id) || m.user, { extra: badge, action })));
  }
  const sections = [
    h("div", { class: "info-card" }, conversationAvatar(c, { size: "lg" }), h("h3", { text: c.title }),
      h("p", { class: "muted", text: c.left ? "You are no longer a participant" : `Group · ${current.length} member${current.length === 1 ? "" : "s"}` }),
      admin ? photoControls({ label: "group photo", current: c.photo, error, keep: "group-photo", save: async (mediaId) => {
        upsertConversation(await api.patch(`conversations/${c.id}`, { photo_media_id: mediaId }));
        renderConversationEverywhere(c);
      } }).el : null),
    h("div", { class: "drawer-section" }, h("h4", { class: "section-title", text: `${current.length} member${current.length === 1 ? "" : "s"}` }), members),
  ];
  if (admin) {
    const present = new Set(c.members.map((m) => m.user.id));
    const picker = peoplePicker(knownPeople(present), "Add members");
    const form = h("form", { class: "drawer-section drawer-form", novalidate: true }, picker.el,
      h("button", { type: "submit", class: "button button-primary", text: "Add to group", dataset: { keep: "add-to-group" } }));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const ids = picker.selected();
      if (!ids.length) return showError(error, "Choose someone to add.");
      try {
        upsertConversation(await api.post(`conversations/${c.id}/members`, { user_ids: ids }));
        renderConversationEverywhere(c);
      } catch (exc) { showError(error, exc); }
    });
    sections.push(form);
  }
  if (!c.left) sections.push(preferencesSection(c, error));
  if (!c.left) {
    sections.push(h("div", { class: "drawer-section actions" },
      h("button", { type: "button", class: "action-row danger", dataset: { keep: "exit-group" }, onclick: async () => {
        try {
          await api.delete(`conversations/${c.id}/members/${me.id}`);
          c.left = true;
          renderConversationEverywhere(c);
          await refreshConversation(c.id); // as the server keeps it for me now: read-only, left
        } catch (exc) { showError(error, exc); }
      } }, icon("exit"), "Exit group")));
  } else {
    sections.push(h("div", { class: "drawer-section actions" },
      h("button", { type: "button", class: "action-row danger", dataset: { keep: "delete-chat" }, onclick: () => askDeleteChat(c) },
        icon("delete"), "Delete chat")));
  }
  sections.push(error);
  append(body, sections);
}

// --- wiring ----------------------------------------------------------------------------------

function renderBanner(connState) {
  const banner = els.banner;
  // The page's connection as a whole (idle, connecting, open, waiting, stopped): the banner alone
  // cannot say "open" for a page whose first socket is not yet asked for, since both are hidden.
  document.body.dataset.connection = connState;
  if (connState === "open" || connState === "idle") {
    banner.hidden = true;
    document.body.classList.remove("offline");
    const open = state.conversations.get(state.openId);
    if (open) renderHeader(open);
    return;
  }
  if (connState === "stopped") return;
  const reconnecting = conn.everOpened;
  const open = state.conversations.get(state.openId);
  if (open) renderHeader(open);
  banner.hidden = false;
  document.body.classList.toggle("offline", reconnecting);
  clear(banner);
  append(banner, [
    h("span", { class: "spinner", "aria-hidden": "true" }),
    h("span", { class: "banner-text", text: reconnecting ? "Reconnecting…" : "Connecting…" }),
    reconnecting ? h("span", { class: "banner-detail", text: " Messages you write now will be sent when the connection is back." }) : null,
    connState === "waiting" ? h("button", { type: "button", class: "link-button", text: "Retry now", onclick: () => conn.retryNow() }) : null,
  ]);
}

conn.opens = 0;
conn.addEventListener("state", (event) => {
  if (event.detail !== "open") pauseSendDeadlines();
  renderBanner(event.detail);
});
conn.addEventListener("open", () => {
  conn.opens += 1;
  onOpen();
});
conn.addEventListener("event", (event) => onEvent(event.detail));
// Logging out (here or elsewhere) ends the session's sockets too (session.revoked, then close 4001):
// the first way out wins, so the logout form's own redirect is not overtaken by the socket's.
// Leaving for the login page means the session is over (logged out elsewhere, a new password, an
// operator, expiry): the drafts go as at a logout, since whoever sits here next may not be this
// user. A socket that merely drops (the network, a restarted server) is no way out: it reconnects.
let leaving = false;
let renewingSession = false;
function leave(url) {
  if (renewingSession) return; // the old socket of a session given a new key (passwordForm)
  if (!leaving) {
    leaving = true;
    drafts.clear();
    location.assign(url);
  }
}
document.addEventListener("submit", (event) => {
  if (event.target.closest(".logout-form")) {
    leaving = true;
    drafts.clear(); // nothing typed here outlives the logout
  }
}, true);
// Another tab of this browser changed a draft (sent it, say) or logged out: this page's copies of
// the chats not open here follow, so switching chats here cannot bring back a draft sent there.
window.addEventListener("storage", (event) => {
  if (event.key !== null && !drafts.owns(event.key)) return;
  for (const c of state.conversations.values()) if (!isOpen(c)) c.draft = drafts.get(c.id);
  renderChatList();
});
conn.addEventListener("unauthenticated", () => leave(`/login/?next=${encodeURIComponent(location.pathname)}`));

document.addEventListener("visibilitychange", () => {
  const c = state.conversations.get(state.openId);
  if (c) maybeRead(c);
  renderTitleCount();
});

document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  if (document.querySelector("dialog[open]")) return; // the dialog's own Escape closes it, and only it
  const open = openChat();
  if (open && open.confirmDelete) confirmDelete(open, null, { focus: "trash" });
  else if (open && state.confirmDeleteChat === open.id) askDeleteChat(open, false);
  else if (!els.sideDrawer.hidden) closeSide();
  else if (!els.searchDrawer.hidden) closeSearch();
  else if (!els.infoDrawer.hidden) closeInfo();
  else if (open && open.editing) cancelEdit(open);
  else if (open && open.replyTo && !els.replyBar.hidden) cancelReply(open);
  else if (state.openId !== null && window.matchMedia("(max-width: 759px)").matches) closeConversation();
});

els.filter.addEventListener("input", () => {
  state.filter = els.filter.value;
  renderChatList();
});
$("open-new-chat").addEventListener("click", openNewChat);
$("empty-new-chat").addEventListener("click", openNewChat);
$("open-new-group").addEventListener("click", openNewGroup);
els.profileButton.addEventListener("click", openProfile);
$("back-to-list").addEventListener("click", closeConversation);
$("open-info").addEventListener("click", () => (els.infoDrawer.hidden ? openInfo() : closeInfo()));
$("open-search").addEventListener("click", () => (els.searchDrawer.hidden ? openSearch() : closeSearch()));

async function start() {
  hydrateIcons();
  renderProfileButton();
  renderBanner("connecting");
  let list = null;
  for (let attempt = 0; list === null; attempt += 1) {
    try {
      list = await api.conversations();
    } catch (exc) {
      if (exc instanceof ApiError && exc.status === 401) {
        leave("/login/"); // the session ended between the page and its first request
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(10000, 500 * 2 ** attempt)));
    }
  }
  for (const p of list) upsertConversation(p);
  renderChatList();
  renderNotifyOffer();
  await loadContacts();
  renderChatList();
  conn.start();
  const wanted = /^#chat-(\d+)$/.exec(location.hash);
  if (wanted && state.conversations.has(Number(wanted[1]))) openConversation(Number(wanted[1]));
}

start();
