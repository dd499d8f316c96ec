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

  seed.py clients-sql SEED FROM TO OWNER      print SQL (COPY) adding clients FROM..TO-1 of
                                              OWNER, one API key each, for psql
  seed.py sqlite-clients DB SEED FROM TO OWNER  the same into a SQLite database
  seed.py exchange-bodies SEED FROM TO [STEP] print one client_credentials form body a line
                                              (client_secret_post) for each client i

Refresh tokens are derived the same way: refresh(i) = "rt_" + base64url(sha256("SEED:rt:i")).
So are clients and their keys: client(i) = "cli_" + base64url(md5("SEED:cli:i")), with key
"sk_" + hex(md5("SEED:key:i")) + "_" + base64url(sha256("SEED:sk:i")), the shapes sesame issues.
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


def close_db(db: sqlite3.Connection) -> None:
    # Fold the seed into the database file and empty the WAL, so that the server's next
    # commit does not pay for checkpointing it (on Postgres, VACUUM follows).
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


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
    close_db(db)


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
    close_db(db)


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
    close_db(db)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def client(seed: str, i: int) -> tuple[str, str, str, bytes]:
    """(client id, key id, key, SHA-256 of the key) of seeded client i."""
    client_id = "cli_" + b64(hashlib.md5(f"{seed}:cli:{i}".encode()).digest())
    key_id = uuid.UUID(hashlib.md5(f"{seed}:key:{i}".encode()).hexdigest())
    key = f"sk_{key_id.hex}_{b64(hashlib.sha256(f'{seed}:sk:{i}'.encode()).digest())}"
    return client_id, str(key_id), key, hashlib.sha256(key.encode()).digest()


def cmd_clients_sql(seed: str, start: str, stop: str, owner: str) -> None:
    rows = [client(seed, i) for i in range(int(start), int(stop))]
    out = sys.stdout
    out.write("COPY clients (id, owner_id, name, scopes, created_at) FROM STDIN;\n")
    for client_id, _, _, _ in rows:
        out.write(f"{client_id}\t{owner}\tseeded\tbench:read\tnow\n")
    out.write("\\.\nCOPY api_keys (id, client_id, key_hash, created_at) FROM STDIN;\n")
    for client_id, key_id, _, digest in rows:
        out.write(f"{key_id}\t{client_id}\t\\\\x{digest.hex()}\tnow\n")
    out.write("\\.\n")


def cmd_sqlite_clients(path: str, seed: str, start: str, stop: str, owner: str) -> None:
    db = open_db(path)
    start, stop = int(start), int(stop)
    for lo in range(start, stop, BATCH):
        at = now_micros()
        rows = [client(seed, i) for i in range(lo, min(lo + BATCH, stop))]
        with db:
            db.executemany(
                "INSERT INTO clients (id, owner_id, name, scopes, created_at) VALUES (?, ?, 'seeded', 'bench:read', ?)",
                [(client_id, owner, at) for client_id, _, _, _ in rows],
            )
            db.executemany(
                "INSERT INTO api_keys (id, client_id, key_hash, created_at) VALUES (?, ?, ?, ?)",
                [(key_id, client_id, digest, at) for client_id, key_id, _, digest in rows],
            )
    close_db(db)


def cmd_exchange_bodies(seed: str, start: str, stop: str, step: str = "1") -> None:
    out = sys.stdout
    for i in range(int(start), int(stop), int(step)):
        client_id, _, key, _ = client(seed, i)
        out.write(f"grant_type=client_credentials&client_id={client_id}&client_secret={key}\n")


COMMANDS = {
    "clients-sql": cmd_clients_sql,
    "sqlite-clients": cmd_sqlite_clients,
    "exchange-bodies": cmd_exchange_bodies,
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
