// sesame's Swagger UI set-up. Everything it loads comes from this server: the document
// beside this page, no validator badge, no other network access.
"use strict";

// Unsafe requests made with the session cookie need the session's CSRF token; take it
// from a successful POST /login or GET /me so that "Try it out" works after signing in.
function rememberCsrfToken(response) {
  try {
    const path = new URL(response.url, window.location.href).pathname;
    const body = response.body;
    if (response.ok && /\/(login|me)$/.test(path) && body && typeof body.csrf_token === "string") {
      window.ui.preauthorizeApiKey("csrf_token", body.csrf_token);
    }
  } catch (_) {
    // A response we cannot read changes nothing.
  }
  return response;
}

window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: new URL("openapi.json", window.location.href).href,
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    // Send the session cookie with "Try it out" requests. What is entered under
    // Authorize (a bearer token, the CSRF token) lives only as long as the page: it is
    // never written to the browser's storage, where any script of this origin, and
    // anyone with the profile, could read it later.
    withCredentials: true,
    persistAuthorization: false,
    validatorUrl: null,
    responseInterceptor: rememberCsrfToken,
    // The authorization-code flow's popup comes back here; register this URL as a
    // redirect URI of a public client to sign in through it.
    oauth2RedirectUrl: new URL("docs/oauth2-redirect.html", window.location.href).href,
  });
  // PKCE (S256), which sesame requires of every client.
  window.ui.initOAuth({ usePkceWithAuthorizationCodeGrant: true });
});
