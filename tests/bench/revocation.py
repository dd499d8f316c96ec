#!/usr/bin/env python3
"""Cross-instance revocation latency for tests/bench/measure.sh (standard library only).

  revocation.py A B BASIC SAMPLES

A and B are two sesame instances on one database; BASIC is a client's HTTP Basic
credential. For each sample: a token from A, accepted by B's GET /me; revoked on A
(POST /oauth/revoke); then B is asked until it refuses. Prints one line:
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


def main(a, b, basic, samples):
    form = {"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"}
    latencies, timeouts = [], 0
    for _ in range(int(samples)):
        status, body = call(f"{a}/login", b"grant_type=client_credentials", form)
        if status != 200:
            sys.exit(f"exchange on A: {status}")
        token = json.loads(body)["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        if call(f"{b}/me", headers=bearer)[0] != 200:
            sys.exit("B does not accept a fresh token")
        status, _ = call(f"{a}/oauth/revoke", f"token={token}".encode(), form)
        if status != 200:
            sys.exit(f"revoke on A: {status}")
        revoked = time.monotonic()
        while call(f"{b}/me", headers=bearer)[0] == 200:
            if time.monotonic() - revoked > 3:
                timeouts += 1
                break
        latencies.append((time.monotonic() - revoked) * 1000)
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    print(f"BENCH samples={len(latencies)} p50_ms={pick(0.5):.1f} p99_ms={pick(0.99):.1f} "
          f"max_ms={latencies[-1]:.1f} timeouts={timeouts}")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    main(*sys.argv[1:])
