#!/usr/bin/env python3
"""Seeding helpers for tests/bench/measure.sh (standard library only).

Session handles are derived, not stored: handle(i) = base64url(sha256("SEED:i")) without
padding, 43 characters like the handles sesame issues (32 bytes), with SEED a random
string chosen per run. The Postgres seeding in measure.sh computes the very same expression
in SQL, so this script can list any seeded handle for the wrk scripts.

  seed.py handles SEED FROM TO [STEP]         print handle(i) for i in range(FROM, TO, STEP)
  seed.py sqlite-users DB N                   add users user1..user{N-1}@bench.test with
                                              user0's password hash (one real argon2id hash)
  seed.py sqlite-sessions DB SEED FROM TO U   add sessions FROM..TO-1, session i belonging
                                              to user 1 + i % (U-1), created and last seen
                                              5 minutes ago, in batches
  seed.py refresh-bodies SEED FROM TO CLIENT  print one refresh-grant form body a line, with
                                              refresh token i for i in range(FROM, TO)
  seed.py sqlite-refresh DB SEED FROM TO CLIENT
                                              add refresh tokens FROM..TO-1 of CLIENT acting
                                              for user1@bench.test, one family each (version
                                              0 of the user's grant, which must exist)

Refresh tokens are derived the same way: refresh(i) = "rt_" + base64url(sha256("SEED:rt:i")).
"""

import base64
import hashlib
import sqlite3
import sys
import time
import uuid

BATCH = 50_000


def handle(seed: str, i: int) -> str:
    digest = hashlib.sha256(f"{seed}:{i}".encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def refresh_token(seed: str, i: int) -> str:
    digest = hashlib.sha256(f"{seed}:rt:{i}".encode()).digest()
    return "rt_" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def user_id(j: int) -> str:
    # Same as md5('bench-user-' || j)::uuid in measure.sh's Postgres seeding.
    return str(uuid.UUID(hashlib.md5(f"bench-user-{j}".encode()).hexdigest()))


def now_micros() -> int:
    return time.time_ns() // 1000


def open_db(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30)
    # The server keeps its own durability settings; seeding only needs to be fast.
    db.execute("PRAGMA synchronous = OFF")
    return db


def cmd_handles(seed: str, start: str, stop: str, step: str = "1") -> None:
    out = sys.stdout
    for i in range(int(start), int(stop), int(step)):
        out.write(handle(seed, i) + "\n")


def cmd_sqlite_users(path: str, count: str) -> None:
    db = open_db(path)
    (hash_,) = db.execute(
        "SELECT password_hash FROM users WHERE email = 'user0@bench.test'"
    ).fetchone()
    at = now_micros()
    rows = (
        (user_id(j), f"user{j}@bench.test", hash_, at) for j in range(1, int(count))
    )
    with db:
        db.executemany(
            "INSERT INTO users (id, email, password_hash, created_at) VALUES (?, ?, ?, ?)",
            rows,
        )
    db.close()


def cmd_sqlite_sessions(path: str, seed: str, start: str, stop: str, users: str) -> None:
    db = open_db(path)
    others = int(users) - 1
    start, stop = int(start), int(stop)
    for lo in range(start, stop, BATCH):
        # Last seen 5 minutes ago, as in measure.sh's Postgres seeding.
        at = now_micros() - 300_000_000
        rows = []
        for i in range(lo, min(lo + BATCH, stop)):
            h = handle(seed, i)
            rows.append(
                (
                    str(uuid.uuid4()),
                    user_id(1 + i % others),
                    hashlib.sha256(h.encode()).digest(),
                    hashlib.md5(f"csrf-{seed}-{i}".encode()).hexdigest(),
                    at,
                    at,
                )
            )
        with db:
            db.executemany(
                "INSERT INTO sessions (id, user_id, handle_hash, csrf_token, created_at,"
                " last_seen_at, user_agent, ip) VALUES (?, ?, ?, ?, ?, ?, 'bench-seed', '127.0.0.1')",
                rows,
            )
    db.close()


def cmd_refresh_bodies(seed: str, start: str, stop: str, client: str) -> None:
    out = sys.stdout
    for i in range(int(start), int(stop)):
        out.write(f"grant_type=refresh_token&client_id={client}&refresh_token={refresh_token(seed, i)}\n")


def cmd_sqlite_refresh(path: str, seed: str, start: str, stop: str, client: str) -> None:
    db = open_db(path)
    start, stop = int(start), int(stop)
    user = user_id(1)
    for lo in range(start, stop, BATCH):
        at = now_micros()
        families, tokens = [], []
        for i in range(lo, min(lo + BATCH, stop)):
            family = str(uuid.uuid4())
            families.append((family, client, user, at, at, at))
            tokens.append((hashlib.sha256(refresh_token(seed, i).encode()).digest(), family, at))
        with db:
            db.executemany(
                "INSERT INTO refresh_families (id, client_id, user_id, scopes, resources, auth_time,"
                " grant_version, created_at, last_used_at) VALUES (?, ?, ?, 'bench:read', '', ?, 0, ?, ?)",
                families,
            )
            db.executemany(
                "INSERT INTO refresh_tokens (token_hash, family_id, created_at) VALUES (?, ?, ?)",
                tokens,
            )
    db.close()


COMMANDS = {
    "refresh-bodies": cmd_refresh_bodies,
    "sqlite-refresh": cmd_sqlite_refresh,
    "handles": cmd_handles,
    "sqlite-users": cmd_sqlite_users,
    "sqlite-sessions": cmd_sqlite_sessions,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    COMMANDS[sys.argv[1]](*sys.argv[2:])
