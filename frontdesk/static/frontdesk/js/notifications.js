/** Desktop notifications of new messages (the browser's Notification API). The page shows one only
 * once the person has allowed them, which the browser asks only on a click of theirs (the offer in
 * the chat list); chat.js decides which messages call for one. */

const DISMISSED_KEY = "messenger.notifications.offer-dismissed";

function supported() {
  return typeof window.Notification === "function";
}

export function allowed() {
  return supported() && Notification.permission === "granted";
}

/** Whether to offer turning them on: possible, not decided yet, and the offer not put aside. */
export function worthOffering() {
  if (!supported() || Notification.permission !== "default") return false;
  try {
    return localStorage.getItem(DISMISSED_KEY) !== "1";
  } catch {
    return true; // storage refused (a private window's quota): the offer comes back on each load
  }
}

export function dismissOffer() {
  try {
    localStorage.setItem(DISMISSED_KEY, "1");
  } catch {
    // not kept: offered again on the next load
  }
}

/** Ask the browser (from a click); resolves to "granted", "denied" or "default". */
export async function ask() {
  if (!supported()) return "denied";
  try {
    return await Notification.requestPermission();
  } catch {
    return Notification.permission;
  }
}

/** Show a notification; one with the same `tag` (the chat's) replaces it rather than piling up.
 * A click brings this tab forward and calls `onClick`. */
export function show({ title, body, tag, icon, onClick }) {
  if (!allowed()) return null;
  let notification;
  try {
    notification = new Notification(title, { body, tag, icon: icon || undefined });
  } catch {
    return null; // where pages may not construct them (Chrome on Android wants a service worker)
  }
  notification.onclick = () => {
    window.focus();
    notification.close();
    onClick();
  };
  return notification;
}
