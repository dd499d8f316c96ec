"""Waits for sesame to answer, then registers a user for each name given and signs each in,
and registers a client for the first user and exchanges its API key for a token.

Each argument is a name (`A`), or a name and a password (`A=correct horse …`); without
one, the password is random and never printed. Prints shell `export` lines with each
session's cookie value and CSRF token, `SESAME_CONTRACT_SESSION_A`,
`SESAME_CONTRACT_CSRF_A` and so on, for run.sh.
"""

import json
import secrets
import shlex
import sys
import time
import urllib.error
import urllib.request

COOKIE = "sesame_session"


def wait_until_serving(base: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            sys.exit(f"contract: sesame did not answer at {base} within {seconds:.0f} s")
        time.sleep(0.2)


def post(base: str, path: str, body: dict, headers: dict | None = None):
    request = urllib.request.Request(
        f"{base}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    try:
        return urllib.request.urlopen(request, timeout=30)
    except urllib.error.HTTPError as error:
        sys.exit(f"contract: POST {path} answered {error.code}: {error.read().decode(errors='replace')}")


def main() -> None:
    base, names = sys.argv[1], sys.argv[2:]
    wait_until_serving(base, 60)
    for argument in names:
        name, _, password = argument.partition("=")
        email = f"contract-{name.lower()}@example.com"
        credentials = {"email": email, "password": password or secrets.token_urlsafe(24)}
        post(base, "/users", credentials).close()
        with post(base, "/login", credentials) as response:
            body = json.load(response)
            cookies = response.headers.get_all("Set-Cookie") or []
        handle = next(
            (c.split(";", 1)[0].split("=", 1)[1] for c in cookies if c.startswith(f"{COOKIE}=")),
            None,
        )
        if not handle:
            sys.exit(f"contract: signing in as {email} set no {COOKIE} cookie")
        print(f"export SESAME_CONTRACT_SESSION_{name}={shlex.quote(handle)}")
        print(f"export SESAME_CONTRACT_CSRF_{name}={shlex.quote(body['csrf_token'])}")
        if name == names[0].partition("=")[0]:
            seed_client(base, handle, body["csrf_token"])


def seed_client(base: str, handle: str, csrf: str) -> None:
    """A client with an API key, and a token from it, for the token path and bearer auth."""
    headers = {"Cookie": f"{COOKIE}={handle}", "X-CSRF-Token": csrf}
    with post(base, "/clients", {"name": "contract", "scopes": ["notes:read", "notes:write"]}, headers) as response:
        client = json.load(response)
    with post(base, "/login", {"api_key": client["api_key"]["key"]}) as response:
        token = json.load(response)["access_token"]
    print(f"export SESAME_CONTRACT_CLIENT_ID={shlex.quote(client['client_id'])}")
    print(f"export SESAME_CONTRACT_API_KEY={shlex.quote(client['api_key']['key'])}")
    print(f"export SESAME_CONTRACT_TOKEN={shlex.quote(token)}")


if __name__ == "__main__":
    main()
