// The account page: sesame's public JSON API with the session cookie (HttpOnly, never
// seen here) and its CSRF token, kept in memory only. Text goes into the page as text.
"use strict";

let csrf = null;
const $ = (id) => document.getElementById(id);

function say(text, isError) {
  const status = $("status");
  status.textContent = text;
  status.className = isError ? "error" : "";
}

async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
  const response = await fetch(path, {
    method,
    credentials: "same-origin",
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  if (response.status !== 204) {
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
  }
  if (!response.ok) {
    const fields = data && Array.isArray(data.errors)
      ? " " + data.errors.map((e) => `${e.field}: ${e.message}`).join("; ")
      : "";
    const error = new Error(((data && (data.detail || data.title)) || `HTTP ${response.status}`) + fields);
    error.status = response.status;
    throw error;
  }
  return data;
}

function el(tag, text, attributes) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
  return node;
}

function button(label, action) {
  const node = el("button", label, { type: "button" });
  node.addEventListener("click", () => run(action));
  return node;
}

// A destructive action asks once more on the same button before it is done.
function confirmingButton(label, action) {
  const node = el("button", label, { type: "button" });
  let armed = false;
  node.addEventListener("click", () => {
    if (!armed) {
      armed = true;
      node.textContent = `${label}: click again to confirm`;
      return;
    }
    run(action);
  });
  return node;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "never";
}

async function run(action) {
  try {
    await action();
  } catch (error) {
    if (error.status === 401) {
      showSignIn("Your session has ended: sign in again.");
    } else {
      say(error.message, true);
    }
  }
}

function showSignIn(message) {
  csrf = null;
  $("account").hidden = true;
  $("signin-section").hidden = false;
  say(message || "", Boolean(message));
  $("email").focus();
}

async function showAccount(user) {
  $("signin-section").hidden = true;
  $("account").hidden = false;
  $("who").textContent = user.email;
  await refresh();
}

async function refresh() {
  await Promise.all([loadSessions(), loadClients(), loadGrants()]);
}

async function signOut() {
  await api("POST", "/logout");
  showSignIn("Signed out.");
}

// Fills the list `id` with an item for each record `path` answers (made by `render`),
// or with one saying `empty` when there is none.
async function fill(id, path, empty, render) {
  const records = await api("GET", path);
  $(id).replaceChildren(...(records.length === 0 ? [el("li", empty)] : records.map(render)));
}

async function loadSessions() {
  await fill("sessions", "/sessions", "None.", (session) => {
    const item = el("li");
    const name = session.current ? "This session" : (session.user_agent || "A session");
    item.append(el("strong", name));
    const where = [session.ip, session.frontend ? `front end ${session.frontend}` : null].filter(Boolean);
    item.append(el("span", ` — ${where.join(", ")}${where.length ? ", " : ""}last seen ${when(session.last_seen_at)}`));
    if (session.current) {
      item.append(button("Sign out", signOut));
    } else {
      item.append(button("End this session", async () => {
        await api("DELETE", `/sessions/${encodeURIComponent(session.id)}`);
        say("The session has ended.");
        await loadSessions();
      }));
    }
    return item;
  });
}

function showKey(clientId, key) {
  $("new-key-client").textContent = clientId;
  $("new-key-value").textContent = key;
  $("new-key").hidden = false;
  $("copy-key").focus();
}

async function loadClients() {
  await fill("clients", "/clients", "No clients yet.", (client) => {
    const item = el("li", undefined, { "data-client": client.client_id });
    item.append(el("strong", client.name));
    item.append(el("span", ` — ${client.client_id}, ${client.type}, scopes: ${client.scopes.join(" ") || "none"}`));
    const keys = el("ul");
    for (const key of client.keys) {
      const row = el("li", undefined, { "data-key": key.id });
      const state = key.revoked_at ? `revoked ${when(key.revoked_at)}` : `last used ${when(key.last_used_at)}`;
      // Key ids begin with their time: their ends tell them apart.
      row.append(el("span", `Key …${key.id.slice(-8)} made ${when(key.created_at)}, ${state} `));
      if (!key.revoked_at) {
        row.append(confirmingButton("Revoke key", async () => {
          await api("DELETE", `/clients/${encodeURIComponent(client.client_id)}/keys/${encodeURIComponent(key.id)}`);
          say("The key is revoked.");
          await loadClients();
        }));
      }
      keys.append(row);
    }
    item.append(keys);
    if (client.type === "confidential") {
      item.append(button("Add a key", async () => {
        const key = await api("POST", `/clients/${encodeURIComponent(client.client_id)}/keys`);
        await loadClients();
        showKey(client.client_id, key.key);
      }));
    }
    item.append(confirmingButton("Delete client", async () => {
      await api("DELETE", `/clients/${encodeURIComponent(client.client_id)}`);
      say(`${client.name} is deleted.`);
      await loadClients();
    }));
    return item;
  });
}

async function loadGrants() {
  await fill("grants", "/me/grants", "None.", (grant) => {
    const item = el("li", undefined, { "data-grant": grant.client_id });
    item.append(el("strong", grant.client_name));
    item.append(el("span", ` — ${grant.scopes.join(" ") || "no scopes"}, since ${when(grant.created_at)} `));
    item.append(confirmingButton("Revoke access", async () => {
      await api("DELETE", `/me/grants/${encodeURIComponent(grant.client_id)}`);
      say(`${grant.client_name} can no longer act for you.`);
      await loadGrants();
    }));
    return item;
  });
}

$("signin").addEventListener("submit", (event) => {
  event.preventDefault();
  run(async () => {
    try {
      const data = await api("POST", "/login", { email: $("email").value, password: $("password").value });
      csrf = data.csrf_token;
      $("password").value = "";
      say("");
      await showAccount(data.user);
    } catch (error) {
      if (error.status === 401) {
        say("The email or password is incorrect.", true);
        $("password").focus();
      } else {
        throw error;
      }
    }
  });
});

$("signout").addEventListener("click", () => run(signOut));

$("end-others").addEventListener("click", () => run(async () => {
  await api("DELETE", "/sessions");
  say("Every other session has ended.");
  await loadSessions();
}));

$("password-form").addEventListener("submit", (event) => {
  event.preventDefault();
  run(async () => {
    await api("PUT", "/me/password", {
      current_password: $("current-password").value,
      new_password: $("new-password").value,
    });
    $("current-password").value = "";
    $("new-password").value = "";
    say("Password changed; every other session has ended.");
    await loadSessions();
  });
});

$("client-form").addEventListener("submit", (event) => {
  event.preventDefault();
  run(async () => {
    const scopes = $("client-scopes").value.split(/\s+/).filter(Boolean);
    const client = await api("POST", "/clients", { name: $("client-name").value, scopes });
    $("client-name").value = "";
    $("client-scopes").value = "";
    await loadClients();
    if (client.api_key) showKey(client.client_id, client.api_key.key);
    say(`${client.name} is registered.`);
  });
});

$("copy-key").addEventListener("click", () => run(async () => {
  const key = $("new-key-value").textContent;
  try {
    await navigator.clipboard.writeText(key);
  } catch (_) {
    // Where the clipboard API is refused, copy the selected text the older way.
    const field = el("textarea");
    field.value = key;
    document.body.append(field);
    field.select();
    const copied = document.execCommand("copy");
    field.remove();
    if (!copied) throw new Error("The key could not be copied: select it and copy it by hand.");
  }
  say("The key is copied.");
}));

$("hide-key").addEventListener("click", () => {
  $("new-key-value").textContent = "";
  $("new-key").hidden = true;
});

run(async () => {
  try {
    const me = await api("GET", "/me");
    if (me.kind !== "user") throw Object.assign(new Error("not a session"), { status: 401 });
    csrf = me.csrf_token;
    await showAccount(me.user);
  } catch (error) {
    if (error.status === 401) showSignIn();
    else throw error;
  }
});
