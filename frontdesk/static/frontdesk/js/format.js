// Dates and times for people: "14:05", "Yesterday", "Monday", "03/11/2026".

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const weekdayFormat = new Intl.DateTimeFormat(undefined, { weekday: "long" });
const dateFormat = new Intl.DateTimeFormat(undefined, { day: "2-digit", month: "2-digit", year: "numeric" });
const longDateFormat = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "long", year: "numeric" });

function startOfDay(date) {
  return new Date(date.getFullYear(), date.getMonth(), date.getDate());
}

function daysAgo(date) {
  return Math.round((startOfDay(new Date()) - startOfDay(date)) / 86400000);
}

export function parse(iso) {
  return iso ? new Date(iso) : null;
}

export function clock(iso) {
  return iso ? timeFormat.format(new Date(iso)) : "";
}

/** The time of the last message in the chat list. */
export function listTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  const ago = daysAgo(date);
  if (ago <= 0) return timeFormat.format(date);
  if (ago === 1) return "Yesterday";
  if (ago < 7) return weekdayFormat.format(date);
  return dateFormat.format(date);
}

export function dayKey(iso) {
  const d = new Date(iso);
  return `${d.getFullYear()}-${d.getMonth() + 1}-${d.getDate()}`;
}

/** The label of a day separator in the conversation. */
export function dayLabel(iso) {
  const date = new Date(iso);
  const ago = daysAgo(date);
  if (ago <= 0) return "Today";
  if (ago === 1) return "Yesterday";
  if (ago < 7) return weekdayFormat.format(date);
  return longDateFormat.format(date);
}

export function lastSeen(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  const ago = daysAgo(date);
  if (ago <= 0) return `last seen today at ${timeFormat.format(date)}`;
  if (ago === 1) return `last seen yesterday at ${timeFormat.format(date)}`;
  return `last seen ${dateFormat.format(date)} at ${timeFormat.format(date)}`;
}

/** When something ahead ends: "today at 22:05", "tomorrow at 06:05", "15/12/2026 at 14:05". */
export function untilTime(iso) {
  const date = new Date(iso);
  const ahead = -daysAgo(date);
  const at = timeFormat.format(date);
  if (ahead <= 0) return `today at ${at}`;
  if (ahead === 1) return `tomorrow at ${at}`;
  return `${dateFormat.format(date)} at ${at}`;
}
