// The REST API of docs/protocol.md, called with the session cookie and Django's CSRF header.

export class ApiError extends Error {
  constructor(status, body) {
    const detail = (body && body.error) || {};
    super(detail.message || `The server answered ${status}.`);
    this.status = status;
    this.code = detail.code || "error";
    this.field = detail.field || null;
  }
}

function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return "";
}

export class Api {
  constructor(base) {
    this.base = base;
  }

  async request(method, path, body) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") {
      headers["X-CSRFToken"] = cookie("csrftoken");
      headers["Content-Type"] = "application/json";
    }
    let response;
    try {
      response = await fetch(this.base + path, {
        method, headers, credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (exc) {
      throw new ApiError(0, { error: { code: "network", message: "The server cannot be reached." } });
    }
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch (exc) {
      data = null;
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  get(path, query) {
    const qs = query ? "?" + new URLSearchParams(Object.entries(query).filter(([, v]) => v !== undefined && v !== null)) : "";
    return this.request("GET", path + qs);
  }
  post(path, body = {}) { return this.request("POST", path, body); }
  patch(path, body) { return this.request("PATCH", path, body); }
  put(path, body) { return this.request("PUT", path, body); }
  delete(path, body) { return this.request("DELETE", path, body); }

  conversations() { return this.get("conversations"); }
  conversation(id) { return this.get(`conversations/${id}`); }
  messages(id, query) { return this.get(`conversations/${id}/messages`, query); }
  send(id, clientId, text, mediaId, replyTo) {
    const body = mediaId ? { client_id: clientId, text, media_id: mediaId } : { client_id: clientId, text };
    if (replyTo) body.reply_to = replyTo;
    return this.post(`conversations/${id}/messages`, body);
  }

  /** POST media (multipart) with upload progress: onProgress(fraction 0..1). Resolves to the media. */
  upload(file, kind, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", this.base + "media");
      xhr.setRequestHeader("X-CSRFToken", cookie("csrftoken"));
      xhr.setRequestHeader("Accept", "application/json");
      xhr.responseType = "json";
      xhr.upload.onprogress = (event) => { if (event.lengthComputable && onProgress) onProgress(event.loaded / event.total); };
      xhr.onload = () => (xhr.status === 201 ? resolve(xhr.response) : reject(new ApiError(xhr.status, xhr.response)));
      xhr.onerror = () => reject(new ApiError(0, { error: { code: "network", message: "The server cannot be reached." } }));
      const form = new FormData();
      form.append("file", file, file.name || "file");
      if (kind) form.append("kind", kind);
      xhr.send(form);
    });
  }
  contacts() { return this.get("contacts"); }
}
