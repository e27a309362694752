// Listens on the local API's `/ws` and hands every event to whoever subscribed to its type
// ("task.created", "sync.status", …; "*" for all). When the socket drops it reconnects with a
// growing pause and tells subscribers of "resync" to re-read, so nothing missed stays missed.

const handlers = new Map();
let socket = null;
let retryMs = 250;
let everOpen = false;

export function on(type, handler) {
  if (!handlers.has(type)) handlers.set(type, new Set());
  handlers.get(type).add(handler);
}

function emit(type, data) {
  for (const key of [type, type.split(".")[0] + ".*", "*"]) {
    for (const handler of handlers.get(key) || []) {
      try {
        handler(data, type);
      } catch (err) {
        console.error("event handler failed", type, err);
      }
    }
  }
}

export function connect() {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  socket = new WebSocket(url);
  socket.addEventListener("open", () => {
    retryMs = 250;
    document.documentElement.dataset.live = "open";
    // Whatever happened while the socket was down is read again.
    if (everOpen) emit("resync", {});
    everOpen = true;
  });
  socket.addEventListener("message", (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (message && typeof message.type === "string") emit(message.type, message.data || {});
  });
  socket.addEventListener("close", () => {
    document.documentElement.dataset.live = "closed";
    const wait = retryMs + Math.random() * retryMs * 0.3;
    retryMs = Math.min(retryMs * 2, 5000);
    setTimeout(connect, wait);
  });
}
