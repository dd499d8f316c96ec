"""Off-the-shelf OAuth 2.0 tooling against a live sesame, unchanged: authlib's
authorization-code flow with PKCE (a public and a confidential client) and its
client-credentials flow asking for RFC 8707 resources, and PyJWT verifying what it gets
(an `aud` string or array) with nothing but the published JWKS.

Usage: clients.py BASE RESOURCE RESOURCE — the server must list both resources in
SESAME_RESOURCES. Exits non-zero, saying what failed, on the first failure.
"""

import secrets
import sys

import jwt
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.integrations.base_client.errors import OAuthError


def check(condition: bool, what: str) -> None:
    if not condition:
        sys.exit(f"contract: clients: {what}")


def signed_in(base: str) -> tuple[requests.Session, str]:
    """A fresh user, signed in: the browser (its cookie jar) and the session's CSRF token."""
    browser = requests.Session()
    email = f"tooling-{secrets.token_hex(6)}@example.com"
    password = secrets.token_urlsafe(18)
    created = browser.post(f"{base}/users", json={"email": email, "password": password}, timeout=30)
    check(created.status_code == 201, f"registering a user answered {created.status_code}")
    login = browser.post(f"{base}/login", json={"email": email, "password": password}, timeout=30)
    check(login.status_code == 200, f"signing in answered {login.status_code}")
    return browser, login.json()["csrf_token"]


def registered_client(base: str, **extra) -> tuple[str, str | None, requests.Session, str]:
    """A fresh user signs in and registers a client: its id, first API key (none for a
    public client), and the user's browser and CSRF token."""
    browser, csrf = signed_in(base)
    client = browser.post(
        f"{base}/clients",
        json={"name": "authlib", "scopes": ["notes:read", "notes:write"], **extra},
        headers={"X-CSRF-Token": csrf},
        timeout=30,
    )
    check(client.status_code == 201, f"registering a client answered {client.status_code}")
    body = client.json()
    key = body.get("api_key", {}).get("key")
    return body["client_id"], key, browser, csrf


def authorization_code_flow(base: str, jwks: "jwt.PyJWKClient", public: bool) -> None:
    """authlib's OAuth2Session runs the authorization-code flow with PKCE: the user's
    browser approves on the consent page, and the app redeems the code."""
    callback = "https://app.example.com/cb"
    extra = {"redirect_uris": [callback], "type": "public" if public else "confidential"}
    client_id, key, browser, csrf = registered_client(base, **extra)
    session = OAuth2Session(
        client_id,
        key,
        scope="notes:read",
        redirect_uri=callback,
        code_challenge_method="S256",
        token_endpoint_auth_method="none" if public else "client_secret_basic",
    )
    verifier = secrets.token_urlsafe(48)
    url, state = session.create_authorization_url(f"{base}/authorize", code_verifier=verifier)
    page = browser.get(url, allow_redirects=False, timeout=30)
    check(page.status_code == 200 and "Approve" in page.text, f"consent page: {page.status_code}")
    query = url.split("?", 1)[1]
    approved = browser.post(
        f"{base}/authorize",
        data={"request": query, "csrf_token": csrf, "decision": "approve"},
        headers={"Origin": base},
        allow_redirects=False,
        timeout=30,
    )
    location = approved.headers.get("location", "")
    check(approved.status_code == 303 and location.startswith(callback), f"consent: {approved.status_code} {location}")
    token = session.fetch_token(f"{base}/login", authorization_response=location, code_verifier=verifier)
    check(token["token_type"] == "Bearer" and token["scope"] == "notes:read", f"code exchange: {token}")
    check(f"state={state}" in location, "state came back")
    signing_key = jwks.get_signing_key_from_jwt(token["access_token"])
    claims = jwt.decode(token["access_token"], signing_key, algorithms=["EdDSA"], audience=base, issuer=base)
    check(claims["client_id"] == client_id and claims["sub"] != client_id, f"delegated claims: {claims}")
    # authlib's refresh, as an app runs it when the access token expires: the refresh
    # token rotates.
    first_refresh = token["refresh_token"]
    check(first_refresh.startswith("rt_"), f"a refresh token: {token}")
    refreshed = session.refresh_token(f"{base}/login", refresh_token=first_refresh)
    check(refreshed["refresh_token"] != first_refresh, "the refresh token rotates")
    check(refreshed["scope"] == "notes:read", f"refreshed scope: {refreshed}")
    claims = jwt.decode(
        refreshed["access_token"],
        jwks.get_signing_key_from_jwt(refreshed["access_token"]),
        algorithms=["EdDSA"],
        audience=base,
        issuer=base,
    )
    check(claims["sub"] != client_id and claims["refresh_family"], f"refreshed claims: {claims}")


def main() -> None:
    base, notes, billing = sys.argv[1], sys.argv[2], sys.argv[3]
    client_id, key, _, _ = registered_client(base)
    jwks = jwt.PyJWKClient(f"{base}/.well-known/jwks.json")
    for public in [True, False]:
        authorization_code_flow(base, jwks, public)

    def verify(token: str, audience: str) -> dict:
        signing_key = jwks.get_signing_key_from_jwt(token)
        return jwt.decode(token, signing_key, algorithms=["EdDSA"], audience=audience, issuer=base)

    for method in ["client_secret_basic", "client_secret_post"]:
        session = OAuth2Session(client_id, key, token_endpoint_auth_method=method, scope="notes:read")
        # One resource: `aud` is that string. None: sesame's own audience.
        single = session.fetch_token(f"{base}/login", grant_type="client_credentials", resource=notes)
        check(single["token_type"] == "Bearer" and single["scope"] == "notes:read", f"{method}: {single}")
        claims = verify(single["access_token"], notes)
        check(claims["aud"] == notes, f"{method}: aud {claims['aud']!r}")
        check(claims["sub"] == client_id and "owner" in claims, f"{method}: claims {claims}")
        try:
            verify(single["access_token"], base)
            sys.exit(f"contract: clients: {method}: a token for another resource verified for sesame")
        except jwt.InvalidAudienceError:
            pass
        own = session.fetch_token(f"{base}/login", grant_type="client_credentials")
        check(verify(own["access_token"], base)["aud"] == base, f"{method}: no resource")
        # A resource sesame does not serve: authlib raises the RFC 6749 error.
        try:
            session.fetch_token(f"{base}/login", grant_type="client_credentials", resource="https://evil.example")
            sys.exit(f"contract: clients: {method}: an unknown resource was granted")
        except OAuthError as error:
            check(error.error == "invalid_target", f"{method}: {error.error}")

    # Several resources: the parameter repeated (authlib's requests session folds a body
    # into a dict, so this request is made by hand). `aud` is an array, and PyJWT accepts
    # a token for either of its members and for nothing else.
    answer = requests.post(
        f"{base}/login",
        data=[("grant_type", "client_credentials"), ("resource", notes), ("resource", billing)],
        auth=(client_id, key),
        timeout=30,
    )
    check(answer.status_code == 200, f"several resources answered {answer.status_code}")
    several = answer.json()["access_token"]
    check(verify(several, billing)["aud"] == [notes, billing], "aud array")
    verify(several, notes)
    try:
        verify(several, base)
        sys.exit("contract: clients: a token for other resources verified for sesame")
    except jwt.InvalidAudienceError:
        pass
    print("contract: clients: authlib and PyJWT work unchanged", file=sys.stderr)


if __name__ == "__main__":
    main()
