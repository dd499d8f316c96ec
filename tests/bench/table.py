#!/usr/bin/env python3
"""Renders tests/bench/measure.sh's raw results as one markdown table.

  table.py RESULTS_TXT

Input lines: `meta KEY TEXT…` and `BACKEND SCENARIO key=value…` (see measure.sh).
Every ratio is between figures of the same run, and is marked against its target.
"""

import sys
from collections import defaultdict

# (ratio label, target text, passes?) per checked figure.
TARGETS = {
    "me_cookie": (">=", 0.8),
    "me_bearer": (">=", 0.9),
    "login": (">=", 0.95),  # median of three runs
    "exchange": (">=", 0.6),
    "flood_healthz": ("<=", 5.0),  # p99 ms
    "me_cookie_large": ("<=", 1.2),  # p50 large / small
    "exchange_growth": ("<=", 1.2),  # p50 1e5 clients / 1e2
    "refresh_growth": ("<=", 1.2),  # p50 1e6 tokens / 1e3
    "rss_mid": ("<=", 64.0),  # MiB
    "rss_peak": ("<=", 96.0),  # MiB, VmHWM through the whole run
    "healthz_vs_bare": (">=", 0.9),
    "revocation": ("<=", 100.0),  # p99 ms
}

BACKEND_NAMES = {"postgres": "Postgres", "sqlite": "SQLite"}


def parse(path):
    meta, data, order = {}, defaultdict(dict), []
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split(" ")
            if len(parts) < 2:
                continue
            if parts[0] == "meta":
                meta[parts[1]] = " ".join(parts[2:])
                continue
            backend, scenario = parts[0], parts[1]
            if backend not in order:
                order.append(backend)
            fields = {}
            for item in parts[2:]:
                if "=" in item:
                    k, v = item.split("=", 1)
                    fields[k] = v
            data[backend][scenario] = fields
    return meta, data, order


def num(fields, key):
    try:
        return float(fields[key])
    except (KeyError, TypeError, ValueError):
        return None


def mean(*values):
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def fmt_ms(v):
    if v is None:
        return "—"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}"


def fmt_rps(v):
    return "—" if v is None else f"{v:,.0f}".replace(",", " ")


def check(key, value, unit=""):
    op, limit = TARGETS[key]
    ok = value >= limit if op == ">=" else value <= limit
    sign = "≥" if op == ">=" else "≤"
    shown = f"{value:.2f}" if not unit else f"{value:.1f}{unit}"
    return f"{shown} (target {sign} {limit:g}{unit}) {'✓' if ok else '✗'}"


def sizes(meta):
    out = {}
    for item in meta.get("sizes", "").split():
        k, v = item.split("=")
        out[k] = int(v)
    return out


def power(n):
    """1000 -> '1e3', 1000000 -> '1e6', else the number."""
    s = f"{n:.0e}".replace("e+0", "e").replace("e+", "e")
    return s if float(s) == n else str(n)


def rows_for(backend, d, meta):
    sz = sizes(meta)
    secs = meta.get("seconds", "?")
    rows = []

    def wrk_row(no, label, key, ratio="—"):
        f = d.get(key, {})
        errs = f"{f.get('non2xx', '?')} / {f.get('sockerr', '?')}" if f else "—"
        rows.append([no, label, fmt_rps(num(f, "rps")), fmt_ms(num(f, "p50_ms")),
                     fmt_ms(num(f, "p99_ms")), errs, ratio])

    # Denominators: the mean of the two runs made around the figures compared with them.
    health = mean(num(d.get("healthz", {}), "rps"), num(d.get("healthz_again", {}), "rps"))

    def vs_health(key, label):
        v = num(d.get(key, {}), "rps")
        if v is None or not health:
            return "—"
        return f"{label} = " + check(key, v / health)

    bare = num(d.get("bare", {}), "rps")
    wrk_row("1b", "GET /healthz of a bare axum app: sesame's runtime and hyper settings, no middleware",
            "bare")
    wrk_row("1", "GET /healthz", "healthz",
            "1/1b = " + check("healthz_vs_bare", health / bare) if bare and health else "—")
    wrk_row("1'", "GET /healthz again, after 2, 3, 5 and 8–12 (ratios to 1 use the mean of 1 and 1': "
                  f"{fmt_rps(health)} req/s)", "healthz_again")
    wrk_row("2", f"GET /me, session cookie ({power(sz.get('small', 1000))} sessions stored, "
                 f"cycling {sz.get('small', 1000)} handles)", "me_cookie", vs_health("me_cookie", "2/1"))
    wrk_row("3", "GET /me, bearer JWT (one token)", "me_bearer", vs_health("me_bearer", "3/1"))
    status = d.get("metrics", {}).get("status", "?")
    if "me_bearer_scraped" in d:
        with_, without = num(d["me_bearer_scraped"], "rps"), num(d.get("me_bearer", {}), "rps")
        ratio = f"3m/3 = {with_ / without:.2f} (no target)" if with_ and without else "—"
        wrk_row("3m", "GET /me, bearer, while GET /metrics is scraped every 100 ms",
                "me_bearer_scraped", ratio)
        wrk_row("", "↳ the scraper: GET /metrics, 1 connection, every 100 ms", "metrics_scrape")
    else:
        rows.append(["3m", "GET /me, bearer, while GET /metrics is scraped every 100 ms",
                     "n/a", "n/a", "n/a", "n/a", f"n/a (GET /metrics answers {status})"])
    ceilings = [num(d.get(f"ceiling{i}", {}), "hashes_per_sec") for i in range(4)]
    c = d.get("ceiling0", {})
    rows.append(["4c", f"argon2id ceiling: `sesame bench-hash`, {c.get('threads', '?')} threads, "
                       f"{secs} s (verifications/s), before the first login run",
                 fmt_rps(ceilings[0]), "—", "—", "—", "—"])
    ratios = []
    for run in (1, 2, 3):
        login = num(d.get(f"login{run}", {}), "rps")
        around = mean(ceilings[run - 1], ceilings[run])
        ratio = login / around if login is not None and around else None
        if ratio is not None:
            ratios.append(ratio)
        text = f"4/4c = {ratio:.2f}" if ratio is not None else "—"
        if run == 3 and len(ratios) == 3:
            text += "; median = " + check("login", sorted(ratios)[1])
        wrk_row(f"4.{run}", f"POST /login, email + password (cycling {sz.get('users', 1000)} users), "
                            f"run {run} of 3; then the ceiling again: {fmt_rps(ceilings[run])}/s",
                f"login{run}", text)
    wrk_row("5", "POST /login, API-key exchange (client_credentials, Basic)", "exchange",
            vs_health("exchange", "5/1"))
    small_p50 = num(d.get("exchange_small", {}), "p50_ms")
    large_p50 = num(d.get("exchange_large", {}), "p50_ms")
    wrk_row("5g", "POST /login, exchange cycling 100 keys, 1e2 clients stored (client_secret_post)",
            "exchange_small")
    wrk_row("5G", f"POST /login, exchange cycling 100 other keys spread over "
                  f"{d.get('exchange_large', {}).get('clients', '?')} clients stored", "exchange_large",
            "p50 5G/5g = " + check("exchange_growth", large_p50 / small_p50)
            if small_p50 and large_p50 is not None else "—")
    def ratio_only(key, label):
        v = num(d.get(key, {}), "rps")
        return f"{label} = {v / health:.2f} (no target)" if v is not None and health else "—"

    wrk_row("10", "GET /auth/verify, session cookie (forward auth; cycling 1000 handles)",
            "verify_cookie", ratio_only("verify_cookie", "10/1"))
    wrk_row("11", "GET /auth/verify, bearer JWT (forward auth; one token)",
            "verify_bearer", ratio_only("verify_bearer", "11/1"))
    wrk_row("8", "GET /authorize, standing grant: straight back with a code (303), session cookie",
            "authorize", ratio_only("authorize", "8/1"))
    wrk_row("9", "POST /login, refresh grant (public client; each request spends its own token)",
            "refresh", ratio_only("refresh", "9/1"))
    small_p50 = num(d.get("refresh_small", {}), "p50_ms")
    large_p50 = num(d.get("refresh_large", {}), "p50_ms")
    wrk_row("9g", "POST /login, refresh grant, 1e3 tokens stored, each spent once "
                  f"({d.get('refresh_small', {}).get('stored', '?')} stored after; the server read "
                  f"{d.get('refresh_small', {}).get('read_kib_per_request', '?')} KiB a request)", "refresh_small")
    wrk_row("9G", "POST /login, refresh grant, 1e3 more spent once with "
                  f"{d.get('refresh_large', {}).get('stored', '?')} stored after (the server read "
                  f"{d.get('refresh_large', {}).get('read_kib_per_request', '?')} KiB a request)", "refresh_large",
            "p50 9G/9g = " + check("refresh_growth", large_p50 / small_p50)
            if small_p50 and large_p50 is not None else "—")
    def latency_row(no, label, key):
        f = d.get(key)
        if not f:
            return
        p99 = num(f, "p99_ms")
        rows.append([no, f"{label} ({f.get('samples', '?')} samples; p50, p99; max {f.get('max_ms', '?')} ms)",
                     "—", fmt_ms(num(f, "p50_ms")), fmt_ms(p99), f"{f.get('timeouts', '?')} timeouts",
                     "p99 = " + check("revocation", p99, " ms") if p99 is not None else "—"])

    latency_row("12s", "cross-instance logout: sign out on one instance, until a second refuses the cookie",
                "logout_elsewhere")
    latency_row("12", "cross-instance revocation: revoke on one instance, until a second refuses", "revocation")
    p99 = num(d.get("flood_healthz", {}), "p99_ms")
    wrk_row("6", "GET /healthz, light probe (-t1 -c4, 10 ms pauses) during a login flood", "flood_healthz",
            "p99 = " + check("flood_healthz", p99, " ms") if p99 is not None else "—")
    wrk_row("", f"↳ the flood: POST /login, -t1 -c64, {secs}+2 s", "flood_login")
    large = d.get("peak", {}).get("sessions")
    small_p50 = num(d.get("me_cookie", {}), "p50_ms")
    large_p50 = num(d.get("me_cookie_large", {}), "p50_ms")
    ratio = ("p50 7/2 = " + check("me_cookie_large", large_p50 / small_p50)
             if small_p50 and large_p50 is not None else "—")
    wrk_row("7", f"GET /me, session cookie ({power(sz.get('large', 0))} seeded, {large} stored; "
                 f"{sz.get('small', 1000)} handles spread over them)", "me_cookie_large", ratio)
    rss = num(d.get("rss_mid", {}), "rss_kb")
    wrk_row("R", f"GET /me, cookie, cycling all {power(sz.get('mid', 0))} sessions stored; "
                 "then RSS (before any password login)",
            "exercise", "RSS = " + check("rss_mid", rss / 1024, " MiB") if rss is not None else "—")
    hwm, now = num(d.get("peak", {}), "hwm_kb"), num(d.get("peak", {}), "rss_kb")
    rows.append(["", "RSS at the end of the run, and its peak (VmHWM) through the whole run", "—", "—", "—", "—",
                 f"{now / 1024:.1f} MiB; peak = " + check("rss_peak", hwm / 1024, " MiB") if hwm and now else "—"])
    return [[BACKEND_NAMES.get(backend, backend)] + r for r in rows]


def main():
    meta, data, order = parse(sys.argv[1])
    out = []
    out.append(f"### sesame benchmark, {meta.get('date', '?')}")
    out.append("")
    out.append(f"Machine: {meta.get('cpu', '?')}; load average before the run "
               f"{meta.get('load_before', '?')}. Commit {meta.get('commit', '?')}. "
               f"wrk {meta.get('wrk', '?')}, as a separate process; "
               f"`make bench` took {meta.get('elapsed', '?')} s including the build.")
    details = []
    if "postgres_server" in meta:
        details.append(f"Postgres {meta['postgres_server']}")
    if "sqlite_file" in meta:
        details.append(f"SQLite on {meta['sqlite_file']}")
    if details:
        out.append("Databases: " + "; ".join(details) + ".")
    out.append("")
    out.append("| backend | # | scenario | req/s | p50 ms | p99 ms | ≥400 / sock err | ratio (target) |")
    out.append("|---|---|---|--:|--:|--:|--:|---|")
    for backend in order:
        for row in rows_for(backend, data[backend], meta):
            out.append("| " + " | ".join(row) + " |")
    out.append("")
    out.append("Ratios are of req/s unless marked p50/p99; every figure comes from this one run. "
               "≥400 / sock err: wrk's count of responses with status ≥ 400, and of socket "
               "errors (connect, read, write, timeout).")
    print("\n".join(out))


if __name__ == "__main__":
    main()
