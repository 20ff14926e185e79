// The login and registration pages: a show/hide control for the password, and nothing else.
import { h } from "./dom.js";

for (const input of document.querySelectorAll('input[type="password"]')) {
  // Named by its text ("Show"/"Hide") and tied to the field, so "Password" labels the field alone.
  const toggle = h("button", { type: "button", class: "reveal-button", "aria-pressed": "false", "aria-controls": input.id, text: "Show" });
  toggle.addEventListener("click", () => {
    const shown = input.type === "text";
    input.type = shown ? "password" : "text";
    toggle.textContent = shown ? "Show" : "Hide";
    toggle.setAttribute("aria-pressed", String(!shown));
  });
  const wrap = h("div", { class: "password-wrap" });
  input.replaceWith(wrap);
  wrap.append(input, toggle);
}
const invalid = document.querySelector('[aria-invalid="true"]');
if (invalid) invalid.focus();
