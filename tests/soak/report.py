#!/usr/bin/env python3
"""Renders one `make soak` run (the raw directory soak.sh fills) as a markdown table,
and exits 1 when the run broke a rule (listed in tests/soak/run.sh's header).

Reads: results.txt (meta lines), wrk.log (soak.lua's SOAK_* lines), rss.txt (samples:
"SECONDS RSS_KB HWM_KB FILES THREADS", the last one prefixed "end"), metrics.before and
metrics.after (GET /metrics around the load), server.log (JSON lines).
"""

import json
import os
import re
import sys
from collections import Counter

RAW = sys.argv[1]


def read(name):
    try:
        with open(os.path.join(RAW, name), encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return None


def kv(line):
    return dict(m.groups() for m in re.finditer(r"(\w+)=(\S*)", line))


def mib(kb):
    return f"{kb / 1024:.1f} MiB"


def num(n):
    return f"{n:,}".replace(",", " ")


meta = {}
for line in (read("results.txt") or "").splitlines():
    if line.startswith("meta "):
        key, _, rest = line[5:].partition(" ")
        meta[key] = rest

# ---- soak.lua's counts ----
wrk_log = read("wrk.log") or ""
kinds, examples, total = [], [], None
for line in wrk_log.splitlines():
    if line.startswith("SOAK_KIND "):
        kinds.append(kv(line))
    elif line.startswith("SOAK_EXAMPLE "):
        head, _, detail = line.partition(" detail=")
        examples.append((kv(head), detail))
    elif line.startswith("SOAK_TOTAL "):
        total = kv(line)

# ---- /metrics, before and after: requests by status class, /metrics itself left out ----
COUNT = re.compile(
    r'^sesame_http_request_duration_seconds_count\{([^}]*)\}\s+([0-9.e+]+)$', re.M)
RESULT = re.compile(r'^(sesame_(?:logins|token_issues)_total)\{result="([^"]*)"\}\s+([0-9.e+]+)$', re.M)


def requests_by(text):
    out = Counter()
    for labels, value in COUNT.findall(text or ""):
        lab = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if lab.get("route") == "/metrics":
            continue
        out[(lab.get("method"), lab.get("route"), lab.get("status"))] += int(float(value))
    return out


def results_by(text):
    out = Counter()
    for name, result, value in RESULT.findall(text or ""):
        out[(name, result)] += int(float(value))
    return out


before, after = read("metrics.before"), read("metrics.after")
metrics_ok = before is not None and after is not None
req_diff = requests_by(after) - requests_by(before) if metrics_ok else Counter()
by_class = Counter()
for (_, _, status), n in req_diff.items():
    by_class[f"{status[:1]}xx"] += n
res_diff = results_by(after) - results_by(before) if metrics_ok else Counter()

# ---- RSS samples ----
samples, end, gone = [], None, False
for line in (read("rss.txt") or "").splitlines():
    parts = line.split()
    is_end = parts and parts[0] == "end"
    if is_end:
        parts = parts[1:]
    if len(parts) >= 2 and parts[1] == "gone":
        gone = True
        continue
    if len(parts) < 5:
        continue
    s = dict(zip(("t", "rss", "hwm", "files", "threads"), map(int, parts[:5])))
    if is_end:
        end = s
    else:
        samples.append(s)
warmup = int(meta.get("warmup", "30"))
start = next((s for s in samples if s["t"] >= warmup), None)
every = samples + ([end] if end else [])
peak = max(every, key=lambda s: s["rss"]) if every else None
rule = kv(meta.get("rss_rule", ""))
pct, slack = int(rule.get("pct", 20)), int(rule.get("slack_mib", 8))

# ---- the server's log ----
levels, messages, bad_lines = Counter(), Counter(), []
for line in (read("server.log") or "").splitlines():
    try:
        obj = json.loads(line)
        level = str(obj.get("level", "")).upper()
        fields = obj.get("fields") or {}
        message = fields.get("message") or obj.get("message") or line
    except ValueError:
        level, message = ("PANIC" if "panic" in line.lower() else "OTHER"), line
    if "panic" in line.lower():
        level = "PANIC"
    levels[level] += 1
    if level in ("WARN", "ERROR", "PANIC"):
        messages[(level, str(message)[:160])] += 1
    if level in ("ERROR", "PANIC") and len(bad_lines) < 3:
        bad_lines.append(line[:400])

# ---- the rules ----
failures = []
fivexx_lua = int(total["fivexx"]) if total else None
lost = int(total["lost_sessions"]) if total else None
sockerr = sum(int(total[k]) for k in total if k.startswith("sockerr_")) if total else None
unexpected = sum(int(k["unexpected"]) for k in kinds)
if total is None:
    failures.append("soak.lua printed no summary (see raw/wrk.log)")
else:
    if fivexx_lua:
        failures.append(f"{fivexx_lua} 5xx answers (soak.lua)")
    if lost:
        failures.append(f"{lost} lost sessions")
    if sockerr:
        failures.append(f"{sockerr} socket errors")
if unexpected:
    failures.append(f"{unexpected} unexpected answers")
if not metrics_ok:
    failures.append("no /metrics after the load")
elif by_class["5xx"]:
    failures.append(f"{by_class['5xx']} 5xx answers (/metrics)")
if levels["ERROR"] or levels["PANIC"]:
    failures.append(f"{levels['ERROR']} ERROR and {levels['PANIC']} panic lines in the server log")
if gone or "server_died" in meta:
    failures.append("the server died during the soak")
stop = kv(meta.get("stop", ""))
stop_bad = stop.get("exit", "0") != "0" or stop.get("killed_after_30s") == "yes"
if stop_bad:
    failures.append(f"the server did not stop cleanly on SIGTERM ({meta.get('stop', 'no record')})")
# Sessions stored at the end: every pooled one, the preflight's, and those whose login or
# logout was in flight when wrk stopped (created or not yet deleted, unseen by soak.lua).
stored = kv(meta.get("stored", ""))
stored_range = stored_sessions = None
if total and stored.get("sessions", "").isdigit():
    unanswered = {k["kind"]: int(k["sent"]) - int(k["ok"]) - int(k["unexpected"]) for k in kinds}
    low = int(total["live_sessions"]) + 1
    stored_range = (low, low + unanswered.get("login", 0) + unanswered.get("logout", 0))
    stored_sessions = int(stored["sessions"])
    if not stored_range[0] <= stored_sessions <= stored_range[1]:
        failures.append(f"{stored_sessions} sessions stored at the end, expected "
                        f"{stored_range[0]}–{stored_range[1]}")
growth = limit = None
if start and end:
    growth = end["rss"] - start["rss"]
    limit = start["rss"] * pct / 100 + slack * 1024
    if growth > limit:
        failures.append(f"RSS grew by {mib(growth)} (limit {mib(limit)})")
else:
    failures.append("too few RSS samples to judge memory")


def mark(bad):
    return "✗" if bad else "✓"


# ---- the table ----
out = []
backend = meta.get("backend", "?")
secs = float(total["duration_s"]) if total else float(meta.get("seconds", 0))
out.append(f"## make soak: {backend.split()[0]}, {secs:.0f} s\n")
out.append("| | figure | goal |")
out.append("|---|---|---|")
out.append(f"| date, commit | {meta.get('date', '?')}, `{meta.get('commit', '?')}` | |")
out.append(f"| backend | {backend} | |")
out.append(f"| release binary | {meta.get('binary', '?')} | |")
out.append(f"| machine | {meta.get('machine', '?')}; load before {meta.get('load_before', '?')} | |")
if total:
    out.append(
        f"| load | {meta.get('wrk', '?')}; {total['duration_s']} s, {num(int(total['requests']))} "
        f"requests, **{num(round(float(total['rps'])))} req/s**; slowest answer "
        f"{total['max_ms']} ms | |")
seeded = kv(meta.get("seeded", ""))
out.append(
    f"| seeded | {seeded.get('users', '?')} users and {seeded.get('decoys', '?')} decoys "
    f"(POST /users), {seeded.get('clients', '?')} clients and {seeded.get('decoy_clients', '?')} "
    f"decoy client (CLI); mix {meta.get('mix', 'default')} | |")
for k in kinds:
    statuses = k["statuses"].replace(",", ", ").replace("_", " ") or "none"
    bad = int(k["unexpected"]) > 0
    out.append(
        f"| {k['kind']} | {num(int(k['ok']))} ok / {num(int(k['unexpected']))} unexpected "
        f"of {num(int(k['sent']))} sent ({statuses}) | 0 unexpected {mark(bad)} |")
fx_m = by_class["5xx"] if metrics_ok else "n/a"
out.append(
    f"| **5xx** | {fivexx_lua if total else 'n/a'} (soak.lua) / {fx_m} (/metrics) | "
    f"0 {mark(bool(fivexx_lua) or not metrics_ok or bool(by_class['5xx']))} |")
out.append(f"| **lost sessions** | {lost if total else 'n/a'} | 0 {mark(bool(lost) or total is None)} |")
if total:
    out.append(
        f"| socket errors | connect {total['sockerr_connect']}, read {total['sockerr_read']}, "
        f"write {total['sockerr_write']}, timeout {total['sockerr_timeout']} | 0 {mark(bool(sockerr))} |")
if metrics_ok:
    classes = ", ".join(f"{c} {num(by_class[c])}" for c in sorted(by_class))
    answered = num(int(total["answered"])) if total else "n/a"
    out.append(f"| answers by class (/metrics, /metrics itself left out) | {classes}; "
               f"soak.lua counted {answered} answers | |")
    logins = ", ".join(f"{r} {num(n)}" for (name, r), n in sorted(res_diff.items())
                       if name == "sesame_logins_total")
    issues = ", ".join(f"{r} {num(n)}" for (name, r), n in sorted(res_diff.items())
                       if name == "sesame_token_issues_total")
    out.append(f"| logins / token issues by result (/metrics) | {logins or 'none'} / "
               f"{issues or 'none'} | |")
if start and end:
    out.append(
        f"| **RSS** | start {mib(start['rss'])} (sample at {start['t']} s), end "
        f"{mib(end['rss'])}, max {mib(peak['rss'])} (at {peak['t']} s); growth "
        f"{'+' if growth >= 0 else '−'}{mib(abs(growth))} | growth ≤ {pct}% + {slack} MiB = "
        f"{mib(limit)} {mark(growth > limit)} |")
    out.append(f"| VmHWM, open files, threads | {mib(end['hwm'])}; files {start['files']} → "
               f"{end['files']}; threads {start['threads']} → {end['threads']} | |")
out.append(
    f"| server log | {levels['ERROR']} ERROR, {levels['PANIC']} panic, {levels['WARN']} WARN "
    f"lines | 0 ERROR/panic {mark(levels['ERROR'] or levels['PANIC'])} |")
if stored_range:
    low, high = stored_range
    span = f"{low}" if low == high else f"{low}–{high}"
    out.append(
        f"| stored at the end | {stored_sessions} sessions (expected {span}: soak.lua's "
        f"pools, the preflight's one, logins and logouts unanswered at the stop); "
        f"{stored.get('login_failures', '?')} login failures | {span} "
        f"{mark(not low <= stored_sessions <= high)} |")
if stop:
    how = f"exit {stop.get('exit')} after {stop.get('ms')} ms"
    if stop.get("killed_after_30s") == "yes":
        how += ", killed after 30 s"
else:
    how = "n/a"
out.append(f"| stop | SIGTERM → {how} | exit 0 {mark(stop_bad)} |")
out.append("")
if failures:
    out.append("**FAIL**: " + "; ".join(failures) + ".")
else:
    out.append("**PASS**: no 5xx, no lost or leftover session, no unexpected answer, no ERROR "
               "or panic, RSS flat.")
out.append("")
if samples:
    step = max(1, round(60 / max(1, int(meta.get("sample", "10")))))
    shown = [f"{s['t']} s {s['rss'] / 1024:.1f}" for s in samples[::step]]
    if end:
        shown.append(f"end {end['rss'] / 1024:.1f}")
    out.append("RSS over time (MiB): " + ", ".join(shown) + ".")
    out.append("")
if examples:
    out.append("First unexpected answers:")
    out.append("")
    for k, detail in examples:
        out.append(f"- {k.get('kind')} → {k.get('status', '').replace('_', ' ')}: `{detail[:200]}`")
    out.append("")
fivexx_routes = {key: n for key, n in req_diff.items() if key[2].startswith("5")}
if fivexx_routes:
    out.append("5xx by route (/metrics): " + ", ".join(
        f"{m} {r} {s}: {n}" for (m, r, s), n in sorted(fivexx_routes.items())) + ".")
    out.append("")
if messages:
    out.append("Server log, WARN and worse (count × level: message):")
    out.append("")
    for (level, message), n in messages.most_common(8):
        out.append(f"- {n} × {level}: `{message}`")
    out.append("")
if bad_lines:
    out.append("First ERROR or panic lines of the server log:")
    out.append("")
    out.extend(f"    {line}" for line in bad_lines)
print("\n".join(out).rstrip() + "\n")
sys.exit(1 if failures else 0)
