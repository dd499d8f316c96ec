// The sign-in page: the ordinary JSON POST /login, then back to `return_to` — a path on
// this origin only, never a URL it was handed.
"use strict";
const form = document.getElementById("signin");
const error = document.getElementById("error");

function returnTo() {
  const target = new URLSearchParams(window.location.search).get("return_to") || "";
  return target.startsWith("/") && !target.startsWith("//") && !target.startsWith("/\\") ? target : null;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    const response = await fetch("/login", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email: form.email.value, password: form.password.value }),
    });
    if (response.ok) {
      const target = returnTo();
      if (target) {
        window.location.assign(target);
      } else {
        form.hidden = true;
        document.getElementById("done").hidden = false;
      }
      return;
    }
    error.textContent = response.status === 429
      ? "Too many attempts: wait a while before trying again."
      : response.status === 401
        ? "The email or password is incorrect."
        : "Signing in failed; try again.";
  } catch (_) {
    error.textContent = "The server could not be reached; try again.";
  }
  error.hidden = false;
  button.disabled = false;
  form.password.focus();
});
