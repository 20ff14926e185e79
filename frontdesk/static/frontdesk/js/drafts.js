// What was typed in a chat and not sent yet, kept in this browser across reloads (localStorage).
// Each draft is stored under the logged-in user's id and the conversation's, so another account
// logged in on the same browser never sees it; logging out, or the page finding its session ended
// (chat.js leave()), removes all of the user's.
// Storage may be unavailable (disabled, full, a private window that refuses it): drafts then
// last as long as the page, as before, and nothing fails.

const PREFIX = "messenger.draft.";

export class Drafts {
  constructor(userId) {
    this.prefix = `${PREFIX}${userId}.`;
  }

  key(conversationId) {
    return `${this.prefix}${conversationId}`;
  }

  /** Whether a storage key is one of this user's drafts. */
  owns(key) {
    return key.startsWith(this.prefix);
  }

  /** The draft kept for the conversation, or "". */
  get(conversationId) {
    try {
      return localStorage.getItem(this.key(conversationId)) || "";
    } catch (exc) {
      return "";
    }
  }

  /** Keep `text` as the conversation's draft; text with nothing but blanks is no draft. */
  set(conversationId, text) {
    try {
      if (text.trim()) localStorage.setItem(this.key(conversationId), text);
      else localStorage.removeItem(this.key(conversationId));
    } catch (exc) {
      // Full or refused: the draft stays on this page only.
    }
  }

  /** Remove every draft of this user (logged out, or the session ended otherwise). */
  clear() {
    try {
      const mine = [];
      for (let i = 0; i < localStorage.length; i += 1) {
        const key = localStorage.key(i);
        if (key && this.owns(key)) mine.push(key);
      }
      for (const key of mine) localStorage.removeItem(key);
    } catch (exc) {
      // Nothing could be kept either.
    }
  }
}
