#!/usr/bin/env python3
"""Cross-instance revocation latency for tests/bench/measure.sh (standard library only).

  revocation.py tokens A B BASIC SAMPLES
  revocation.py sessions A B EMAIL PASSWORD SAMPLES

A and B are two sesame instances on one database. `tokens`: BASIC is a client's HTTP Basic
credential; for each sample a token from A, accepted by B's GET /me, is revoked on A
(POST /oauth/revoke), then B is asked until it refuses. `sessions`: for each sample the
user signs in on A, B's GET /me accepts the cookie, the user signs out on A (POST
/logout), then B is asked until it refuses. Prints one line:
  BENCH samples=… p50_ms=… p99_ms=… max_ms=… timeouts=…
"""

import json
import sys
import time
import urllib.error
import urllib.request


def call(url, data=None, headers=None):
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def token_ended(a, basic):
    """A token from A, and how to end it there; the headers that present it."""
    form = {"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"}
    status, body = call(f"{a}/login", b"grant_type=client_credentials", form)
    if status != 200:
        sys.exit(f"exchange on A: {status}")
    token = json.loads(body)["access_token"]

    def end():
        if call(f"{a}/oauth/revoke", f"token={token}".encode(), form)[0] != 200:
            sys.exit("revoke on A failed")

    return {"Authorization": f"Bearer {token}"}, end


def session_ended(a, email, password):
    """A session signed in on A, and how to sign out there; the headers that present it."""
    login = json.dumps({"email": email, "password": password}).encode()
    request = urllib.request.Request(f"{a}/login", data=login, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        cookie = response.headers["Set-Cookie"].split(";")[0]
        csrf = json.loads(response.read())["csrf_token"]
    headers = {"Cookie": cookie}

    def end():
        # A bodied POST must say JSON (a form could come from any site).
        json_headers = {**headers, "X-CSRF-Token": csrf, "Content-Type": "application/json"}
        if call(f"{a}/logout", b"{}", json_headers)[0] != 204:
            sys.exit("logout on A failed")

    return headers, end


def main(kind, a, b, *rest):
    samples = int(rest[-1])
    latencies, timeouts = [], 0
    for _ in range(samples):
        headers, end = token_ended(a, rest[0]) if kind == "tokens" else session_ended(a, rest[0], rest[1])
        if call(f"{b}/me", headers=headers)[0] != 200:
            sys.exit("B does not accept a fresh credential")
        end()
        ended = time.monotonic()
        while call(f"{b}/me", headers=headers)[0] == 200:
            if time.monotonic() - ended > 3:
                timeouts += 1
                break
        latencies.append((time.monotonic() - ended) * 1000)
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    print(f"BENCH samples={len(latencies)} p50_ms={pick(0.5):.1f} p99_ms={pick(0.99):.1f} "
          f"max_ms={latencies[-1]:.1f} timeouts={timeouts}")


if __name__ == "__main__":
    if len(sys.argv) not in (6, 7) or sys.argv[1] not in ("tokens", "sessions"):
        sys.exit(__doc__)
    main(*sys.argv[1:])
