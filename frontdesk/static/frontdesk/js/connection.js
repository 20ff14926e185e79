// One websocket to /ws/v1/ that keeps coming back: exponential backoff with jitter, and an
// immediate retry when the browser says the network is back. Authenticated by the session cookie.

export const CLOSE_UNAUTHENTICATED = 4001;

export class Connection extends EventTarget {
  constructor(path) {
    super();
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    this.url = `${scheme}//${location.host}${path}`;
    this.socket = null;
    this.state = "idle"; // idle | connecting | open | waiting | stopped
    this.attempts = 0;
    this.everOpened = false;
    this.timer = null;
    window.addEventListener("online", () => this.retryNow());
    window.addEventListener("offline", () => this.socket && this.socket.close());
  }

  start() {
    if (this.state === "stopped") return;
    clearTimeout(this.timer);
    this.setState("connecting");
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.addEventListener("open", () => {
      if (socket !== this.socket) return;
      this.attempts = 0;
      this.everOpened = true;
      this.setState("open");
      this.dispatchEvent(new Event("open"));
    });
    socket.addEventListener("message", (msg) => {
      if (socket !== this.socket) return;
      let event;
      try {
        event = JSON.parse(msg.data);
      } catch (exc) {
        return;
      }
      this.dispatchEvent(new CustomEvent("event", { detail: event }));
    });
    socket.addEventListener("close", (closed) => {
      if (socket !== this.socket) return;
      this.socket = null;
      if (closed.code === CLOSE_UNAUTHENTICATED) {
        this.setState("stopped");
        this.dispatchEvent(new Event("unauthenticated"));
        return;
      }
      this.scheduleRetry();
    });
  }

  scheduleRetry() {
    const base = Math.min(10000, 500 * 2 ** this.attempts);
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    this.attempts += 1;
    this.setState("waiting");
    this.timer = setTimeout(() => this.start(), delay);
  }

  retryNow() {
    if (this.state === "waiting") {
      this.attempts = 0;
      this.start();
    }
  }

  get isOpen() {
    return this.socket !== null && this.socket.readyState === WebSocket.OPEN;
  }

  /** Send a frame if the socket is open; false if it is not (the caller keeps it for later). */
  send(frame) {
    if (!this.isOpen) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  /** A new socket in place of this one, for a session whose cookie changed (a new password cycles
   * the session's key): the old socket, bound to the ended session, is dropped unheard. */
  renew() {
    const old = this.socket;
    this.socket = null; // what the old one still says or does is ignored (socket !== this.socket)
    if (old) old.close();
    this.state = "idle";
    this.attempts = 0;
    this.start();
  }

  stop() {
    this.setState("stopped");
    clearTimeout(this.timer);
    if (this.socket) this.socket.close();
  }

  setState(state) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: state }));
  }
}
