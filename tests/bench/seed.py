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


COMMANDS = {
    "handles": cmd_handles,
    "sqlite-users": cmd_sqlite_users,
    "sqlite-sessions": cmd_sqlite_sessions,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    COMMANDS[sys.argv[1]](*sys.argv[2:])
