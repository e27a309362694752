// Local calendar dates as the API writes them (YYYY-MM-DD), and how the UI shows times.

export function isoDate(date) {
  const y = date.getFullYear();
  const m = String(date.getMonth() + 1).padStart(2, "0");
  const d = String(date.getDate()).padStart(2, "0");
  return `${y}-${m}-${d}`;
}

export function today() {
  return isoDate(new Date());
}

export function addDays(iso, days) {
  const [y, m, d] = iso.split("-").map(Number);
  return isoDate(new Date(y, m - 1, d + days));
}

const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: "short", month: "short", day: "numeric" });
const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const stampFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

/** "Today", "Tomorrow", "Yesterday" or a short date. */
export function dayLabel(iso) {
  const now = today();
  if (iso === now) return "Today";
  if (iso === addDays(now, 1)) return "Tomorrow";
  if (iso === addDays(now, -1)) return "Yesterday";
  const [y, m, d] = iso.split("-").map(Number);
  return dayFormat.format(new Date(y, m - 1, d));
}

export function clockTime(isoStamp) {
  return timeFormat.format(new Date(isoStamp));
}

export function stamp(isoStamp) {
  return stampFormat.format(new Date(isoStamp));
}
