#!/usr/bin/env python3
"""Turns the files of one bench/run.sh run into the markdown tables of BENCHMARKS.md.

    report.py RESULTS_DIR [--update BENCHMARKS.md]

Reads meta.json, <target>.lifecycle.json / <target>.lookup.json (scim-edge-load --json),
<target>.wrk.txt, inprocess.json, scale-<store>-<size>.json and .memory.json. Prints markdown;
with --update, also replaces the part of BENCHMARKS.md between the bench-results markers.
Standard library only. Missing files (a run with --only) show as "—".
"""
import argparse
import json
import os
import re
import sys

BEGIN = "<!-- bench-results:begin -->"
END = "<!-- bench-results:end -->"
KIB = 1024

TARGETS = [
    # key, label, floor key (None for a floor itself / the peer)
    ("envoy-floor", "Envoy 1.40 floor: `direct_response`, no wasm", None),
    ("envoy-noop", "Envoy + no-op wasm filter (answers from its headers callback)", "envoy-floor"),
    ("envoy-shared", "Envoy + scim-edge filter, shared-data store", "envoy-floor"),
    ("envoy-etcd", "Envoy + scim-edge filter, etcd store", "envoy-floor"),
    ("envoy-etcd3", "Envoy + scim-edge filter, etcd store on a three-member cluster", "envoy-floor"),
    ("spin-floor", "wasmtime host floor: no-op spin-sdk 6 component", None),
    ("spin", "Spin component on the wasmtime host, SQLite key-value", "spin-floor"),
    ("spin-real", "the real Spin 4.0.2 (`spin up`), SQLite key-value", None),
    ("spin-redis", "the real Spin 4.0.2, key-value on Redis (append-only, fsync each second)", None),
    ("spin-redis2", "two real Spin 4.0.2 instances on one Redis, the load alternating", None),
    ("peer", "peer: scim2-server (in-memory) under waitress (keep-alive, 8 threads)", None),
    ("peer-cli", "peer: scim2-server as its command serves it (wsgiref, HTTP/1.0)", None),
]
FLOORS = {"envoy-floor", "spin-floor"}
SCALE_PHASES = [
    ("absent", "lookup `userName` (absent)"),
    ("lookup", "lookup `userName`"),
    ("lookup-ext", "lookup `externalId`"),
    ("get", "`GET /Users/{id}`"),
    ("create", "create"),
    ("update", "PATCH update"),
    ("disable", "PATCH disable"),
    ("member-add", "add 1 member to the large group"),
    ("member-remove", "remove 1 member from the large group"),
    ("page", "`GET /Users?startIndex=S&count=100`"),
    ("delete", "delete"),
]
SCALE_LIMIT = 1.5


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def phase(doc, name):
    if not doc:
        return None
    return next((p for p in doc.get("phases", []) if p["phase"] == name), None)


def wrk(path):
    """Requests/s, p50 and p99 in ms, and the error count of a `wrk --latency` output."""
    try:
        text = open(path).read()
    except OSError:
        return None
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not m:
        return None

    def lat(q):
        m = re.search(rf"^\s+{q}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if not m:
            return None
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    m4 = re.search(r"(\d+) requests in", text)
    requests = int(m4.group(1)) if m4 else None
    errors = 0
    m2 = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if m2:
        errors += int(m2.group(1))
    m3 = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m3:
        errors += sum(int(x) for x in m3.groups())
    out = {"rps": float(m.group(1)), "p50_ms": lat(50), "p99_ms": lat(99), "errors": errors, "requests": requests}
    cpu = load(path.replace(".wrk.txt", ".wrk-cpu.json"))
    if cpu and requests:
        tick_us = 1e6 / cpu["clk_tck"]
        out["server_cpu_us"] = cpu["server_ticks"] * tick_us / requests
        out["store_cpu_us"] = cpu["store_ticks"] * tick_us / requests if cpu["store_ticks"] else None
    return out


def num(x, digits=0):
    if x is None:
        return "—"
    return f"{x:,.{digits}f}"


def ms(us):
    return "—" if us is None else f"{us / 1000:.2f}"


def ratio(a, b):
    if a is None or not b:
        return None
    return a / b


def fmt_ratio(r):
    return "—" if r is None else f"{r:.2f}×"


def lookup_phase(doc):
    return phase(doc, "floor") or phase(doc, "lookup")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--update", metavar="BENCHMARKS_MD")
    a = ap.parse_args()
    d = a.dir
    meta = load(os.path.join(d, "meta.json")) or {}
    p = meta.get("params", {})
    out = []
    w = out.append

    data = {}
    for key, _, _ in TARGETS:
        data[key] = {
            "lifecycle": load(os.path.join(d, f"{key}.lifecycle.json")),
            "lookup": load(os.path.join(d, f"{key}.lookup.json")),
            "wrk": wrk(os.path.join(d, f"{key}.wrk.txt")),
        }

    def life(key):
        doc = data[key]["lifecycle"]
        return doc.get("lifecycle") if doc else None

    # The peer at its best: of its two servers, the one with the faster lifecycle is the
    # reference of every "× peer".
    best_peer = "peer"
    if life("peer-cli") and (not life("peer") or life("peer-cli")["ops_per_s"] > life("peer")["ops_per_s"]):
        best_peer = "peer-cli"
    peer_life = life(best_peer)
    m = meta.get("machine", {})
    v = meta.get("versions", {})
    command = re.sub(r"--out \S+ ?", "", meta.get("command", "bash bench/run.sh")).strip()
    etcd = re.sub(r"^etcd Version: ", "etcd ", v.get("etcd", "etcd ?"))
    w(f"Run: `{command}` ({meta.get('mode', '?')} form), "
      f"{meta.get('date_utc', '?')}, commit {meta.get('git', '?')}.")
    w("")
    w(f"Machine: {m.get('cpu', '?')}, {m.get('vcpus', '?')} vCPU, {m.get('memory_gib', '?')} GiB RAM, "
      f"Linux {m.get('kernel', '?')}; load average at start {' '.join(m.get('loadavg_at_start', []))}. "
      f"Envoy {v.get('envoy', '?')} (`--concurrency 2`), {etcd}, scim2-server "
      f"{v.get('scim2_server', '?')}, {v.get('wrk') or 'no wrk'}, {v.get('rustc', '?')}; wasmtime host "
      f"profile `{p.get('host_profile', '?')}`. Client and servers share the machine; the load tool runs on "
      f"one thread, wrk with `-t1 -c{p.get('concurrency', '?')}`.")
    w("")
    w(f"Workload: lifecycle of {num(p.get('users'))} users at concurrency {p.get('concurrency', '?')} "
      f"(absent lookup, create, lookup, read, PATCH update, PATCH disable, add to a group, remove from it, "
      f"delete); lookups: {num(p.get('reads'))} lookups by `userName` of 100 users "
      f"(peer: {num(p.get('peer_reads'))}); wrk: {p.get('wrk_seconds', '?')} s of one lookup by `userName`.")
    w("")

    # ---- main table ----
    w("| target | lookup req/s (wrk) | × floor | server CPU µs per lookup (wrk) | × floor "
      "| lookup ops/s (load tool) | × floor | lookup p50 / p99 ms "
      "| lifecycle ops/s | × peer | lifecycle p50 / p99 ms | errors |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key, label, floor in TARGETS:
        t = data[key]
        if not (t["lifecycle"] or t["lookup"] or t["wrk"]):
            continue
        wk = t["wrk"]
        lk = lookup_phase(t["lookup"])
        fl = data[floor] if floor else None
        fl_wrk = fl["wrk"]["rps"] if fl and fl["wrk"] else None
        fl_lk = lookup_phase(fl["lookup"]) if fl else None
        wrk_ratio = 1.0 if key in FLOORS and wk else ratio(wk["rps"] if wk else None, fl_wrk)
        lk_ratio = 1.0 if key in FLOORS and lk else ratio(lk["ops_per_s"] if lk else None, fl_lk["ops_per_s"] if fl_lk else None)
        lf = life(key)
        errors = sum(x["errors"] for x in [t["lifecycle"], t["lookup"]] if x) + (wk["errors"] if wk else 0)
        cpu = wk.get("server_cpu_us") if wk else None
        fl_cpu = fl["wrk"].get("server_cpu_us") if fl and fl["wrk"] else None
        cpu_cell = num(cpu)
        if wk and wk.get("store_cpu_us"):
            cpu_cell += f" (+{num(wk['store_cpu_us'])} store)"
        w("| " + " | ".join([
            label,
            num(wk["rps"]) if wk else "—",
            fmt_ratio(wrk_ratio),
            cpu_cell,
            fmt_ratio(1.0 if key in FLOORS and cpu else ratio(cpu, fl_cpu)),
            num(lk["ops_per_s"]) if lk else "—",
            fmt_ratio(lk_ratio),
            f"{ms(lk['p50_us'])} / {ms(lk['p99_us'])}" if lk else "—",
            num(lf["ops_per_s"]) if lf else "—",
            fmt_ratio(ratio(lf["ops_per_s"], peer_life["ops_per_s"]) if lf and peer_life else None),
            f"{ms(lf['p50_us'])} / {ms(lf['p99_us'])}" if lf else "—",
            str(errors),
        ]) + " |")
    w("")

    # ---- per phase ----
    life_keys = [k for k, _, _ in TARGETS if data[k]["lifecycle"]]
    if life_keys:
        names = {k: lbl for k, lbl, _ in TARGETS}
        short = {"envoy-shared": "Envoy, shared data", "envoy-etcd": "Envoy, etcd", "envoy-etcd3": "Envoy, etcd ×3", "spin": "Spin (wasmtime)", "spin-real": "real Spin, SQLite", "spin-redis": "real Spin, Redis", "spin-redis2": "real Spin ×2, Redis",
                 "peer": "scim2-server (waitress)", "peer-cli": "scim2-server (its command)"}
        w(f"Lifecycle per phase: ops/s (p50 ms), and × peer for ops/s (the peer: {short.get(best_peer, best_peer)}, "
          "the faster of its two servers).")
        w("")
        w("| phase | " + " | ".join(short.get(k, names[k]) for k in life_keys) + " |")
        w("|---|" + "---:|" * len(life_keys))
        for ph in ["absent", "create", "lookup", "get", "update", "disable", "member-add", "member-remove", "delete"]:
            cells = []
            peer_ph = phase(data[best_peer]["lifecycle"], ph)
            for k in life_keys:
                x = phase(data[k]["lifecycle"], ph)
                if not x:
                    cells.append("—")
                    continue
                cell = f"{num(x['ops_per_s'])} ({ms(x['p50_us'])})"
                if not k.startswith("peer") and peer_ph:
                    cell += f" {fmt_ratio(ratio(x['ops_per_s'], peer_ph['ops_per_s']))}"
                if x["errors"]:
                    cell += f" **{x['errors']} errors**"
                cells.append(cell)
            w(f"| {ph} | " + " | ".join(cells) + " |")
        w("")

    # Single requests beside the floor (wrk): the filter's fixed cost, and Entra's commonest lookup.
    floor_wrk = data["envoy-floor"]["wrk"]
    for label, what in [
        ("401", "The filter's fixed cost (wrk, the same request with a wrong token: 401 after the "
                "configuration, routing, one shared-data read, the token's hash and an error body)"),
        ("absent", "A lookup of a `userName` nobody has (wrk; what Entra sends before every create, and on "
                   "Test Connection; the floor's `direct_response` answers with this very body)"),
    ]:
        x = wrk(os.path.join(d, f"envoy-shared.{label}.wrk.txt"))
        if x and floor_wrk:
            w(f"{what}: {num(x['rps'])} req/s, {fmt_ratio(ratio(x['rps'], floor_wrk['rps']))} the floor; "
              f"{num(x.get('server_cpu_us'))} µs of Envoy CPU per request "
              f"({fmt_ratio(ratio(x.get('server_cpu_us'), floor_wrk.get('server_cpu_us')))} the floor's).")
            w("")

    # ---- scale ----
    scale_rows = []
    for store in p.get("scale_stores", []):
        small = load(os.path.join(d, f"scale-{store}-small.json"))
        large = load(os.path.join(d, f"scale-{store}-large.json"))
        if not (small and large):
            continue
        scale_rows.append((store, small, large))
        w(f"Scale, Envoy + {'shared data' if store == 'shared' else 'etcd'}: the same {num(p.get('scale_users'))} "
          f"users' requests (concurrency {p.get('concurrency')}) in a tenant of {num(small['seed'])} users "
          f"with a group of {num(small['group_members'])} members, and in one of {num(large['seed'])} users "
          f"with a group of {num(large['group_members'])}. Pages start at {num(small['page_start'])} and "
          f"{num(large['page_start'])}.")
        w("")
        w(f"| request | p50 ms, {num(small['seed'])} | p50 ms, {num(large['seed'])} | large ÷ small | "
          f"ops/s, {num(small['seed'])} | ops/s, {num(large['seed'])} | within {SCALE_LIMIT}× |")
        w("|---|---:|---:|---:|---:|---:|:---:|")
        for ph, label in SCALE_PHASES:
            s, l = phase(small, ph), phase(large, ph)
            if not (s and l):
                continue
            r = ratio(l["p50_us"], s["p50_us"])
            ok = "yes" if r is not None and r <= SCALE_LIMIT else "**no**"
            w(f"| {label} | {ms(s['p50_us'])} | {ms(l['p50_us'])} | {fmt_ratio(r)} | {num(s['ops_per_s'])} "
              f"| {num(l['ops_per_s'])} | {ok} |")
        for doc, size in [(small, "small"), (large, "large")]:
            seed = phase(doc, "seed")
            sm = phase(doc, "seed-members")
            mem = load(os.path.join(d, f"scale-{store}-{size}.memory.json")) or {}
            line = f"Seeding {num(doc['seed'])} users: {num(seed['seconds'], 1)} s ({num(seed['ops_per_s'])} creates/s)" if seed else ""
            if sm:
                line += f", {num(doc['group_members'])} members in {num(sm['ops'])} PATCHes: {num(sm['seconds'], 1)} s"
            if mem:
                line += (f"; Envoy RSS {num(mem.get('envoy_rss_kib_before', 0) / KIB, 1)} MiB after start → "
                         f"{num(mem.get('envoy_rss_kib_after', 0) / KIB, 1)} MiB after the run "
                         f"(peak {num(mem.get('envoy_hwm_kib', 0) / KIB, 1)} MiB)")
                if mem.get("etcd_rss_kib_after"):
                    line += f", etcd RSS {num(mem['etcd_rss_kib_after'] / KIB, 1)} MiB"
            errs = sum(x["errors"] for x in doc.get("phases", []))
            w(f"- {line}; errors: {errs}.")
        w("")

    # ---- in-process ----
    inproc = load(os.path.join(d, "inprocess.json"))
    if inproc:
        w(f"Spin component in-process (`SpinHost::handle`: fresh store + instance + `wasi:http` handler per "
          f"request, Spin's key-value semantics in memory; host built `{p.get('host_profile', '?')}`, "
          f"{inproc['profile']}; component compiled in {inproc['compile_ms']} ms; {inproc['iterations']} "
          f"iterations each):")
        w("")
        w("| instance allocator | request | p50 µs | p90 µs | p99 µs | mean µs |")
        w("|---|---|---:|---:|---:|---:|")
        for r in inproc["results"]:
            alloc = r.get("allocator", "on-demand")
            alloc = {"on-demand": "on-demand (SpinHost's default, the tests)", "pooling": "pooling (`spin up`'s default, the dev host)"}.get(alloc, alloc)
            w(f"| {alloc} | {r['request']} | {r['p50_us']:.0f} | {r['p90_us']:.0f} | {r['p99_us']:.0f} | {r['mean_us']:.0f} |")
        w("")

    # ---- sizes ----
    sizes = meta.get("sizes", {})
    if sizes:
        w("| release artefact | bytes | KiB | gzip -9 KiB |")
        w("|---|---:|---:|---:|")
        for k, label in [("envoy_filter", "Envoy filter"), ("spin_component", "Spin component"),
                         ("noop_component", "no-op Spin component (floor)"),
                         ("noop_filter", "no-op Envoy filter (floor)")]:
            s = sizes.get(k)
            if s:
                w(f"| {label} (`{s['path']}`) | {s['bytes']:,} | {s['bytes'] / KIB:.1f} | {s['gzip9'] / KIB:.1f} |")
        w("")

    # ---- edge ----
    eg, eu = wrk(os.path.join(d, "edge.guarded.wrk.txt")), wrk(os.path.join(d, "edge.unguarded.wrk.txt"))
    ops = load(os.path.join(d, "edge.ops.json"))
    if eg or eu:
        w("Enforcement at the edge (Envoy + scim-edge on etcd, the demo upstream behind it, wrk):")
        w("")
        w("| request | requests/s | p50 ms | p99 ms | Envoy CPU µs per request | errors | store callouts per request |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        cold = ops["cold_callouts"] if ops else None
        warm = ops["warm_callouts"] / eg["requests"] if ops and eg and eg["requests"] else None
        for label, r, c in [("unguarded (`/public/`: the filter strips the product's headers)", eu, "0"),
                            ("guarded, warm cache (`/app/`: identity header, headers injected)", eg,
                             f"{warm:.4f}" if warm is not None else "—"),
                            ("guarded, cold cache (one request)", None, num(cold))]:
            w(f"| {label} | {num(r['rps']) if r else '—'} | {num(r['p50_ms'], 2) if r else '—'} | "
              f"{num(r['p99_ms'], 2) if r else '—'} | {num(r.get('server_cpu_us')) if r else '—'} | "
              f"{r['errors'] if r else '—'} | {c} |")
        w("")
        w("Requests/s of the two runs move with whatever else the machine runs between them; the "
          "CPU Envoy spent per request is the steadier comparison.")
        w("")

    # ---- targets ----
    w("| target | measured | met? |")
    w("|---|---|---|")

    def target(name, value, ok, short_by=""):
        status = "—" if ok is None else ("met" if ok else f"**missed**{(' ' + short_by) if short_by else ''}")
        w(f"| {name} | {value} | {status} |")

    es, ef = data["envoy-shared"], data["envoy-floor"]
    r_wrk = ratio(es["wrk"]["rps"] if es["wrk"] else None, ef["wrk"]["rps"] if ef["wrk"] else None)
    es_lk, ef_lk = lookup_phase(es["lookup"]), lookup_phase(ef["lookup"])
    r_load = ratio(es_lk["ops_per_s"] if es_lk else None, ef_lk["ops_per_s"] if ef_lk else None)
    r = r_wrk if r_wrk is not None else r_load
    target("Envoy, shared data: lookup by `userName` ≥ 50% of the floor's requests/s",
           f"{num(r * 100 if r is not None else None)}% (wrk), {num(r_load * 100 if r_load is not None else None)}% (load tool)",
           None if r is None else r >= 0.5, f"by {num((0.5 - r) * 100 if r is not None else None)} points")
    for key, want, label in [("envoy-shared", 10, "Envoy, shared data: lifecycle ≥ 10× the peer's ops/s"),
                             ("envoy-etcd", 3, "Envoy, etcd: lifecycle ≥ 3× the peer's ops/s, zero errors"),
                             ("spin-real", 1.5, "The real Spin, SQLite: lifecycle ≥ 1.5× the peer's ops/s, zero errors")]:
        lf = life(key)
        r = ratio(lf["ops_per_s"], peer_life["ops_per_s"]) if lf and peer_life else None
        errors = lf["errors"] if lf else None
        ok = None if r is None else (r >= want and (key == "envoy-shared" or errors == 0))
        target(label, f"{fmt_ratio(r)}, {errors if errors is not None else '—'} errors", ok,
               f"by {(want - r) / want * 100:.0f}%" if r is not None and r < want else "")
    if eg and eu:
        r = ratio(eg["rps"], eu["rps"])
        target("Edge: a guarded request with a warm cache ≥ 85% of the unguarded request's requests/s",
               f"{num(r * 100)}% ({num(eg['rps'])} vs {num(eu['rps'])} req/s)", r >= 0.85 and eg["errors"] == 0,
               f"by {num((0.85 - r) * 100)} points")
    if inproc:
        for alloc in ["on-demand", "pooling"]:
            lk = next((x for x in inproc["results"] if x["request"] == "lookup userName"
                       and x.get("allocator", "on-demand") == alloc), None)
            if not lk:
                continue
            val = lk["p50_us"]
            fl = next((x for x in inproc["results"] if x["request"].startswith("no-op")
                       and x.get("allocator", "on-demand") == alloc), None)
            extra = f"; the no-op component: {num(fl['p50_us'])} µs" if fl else ""
            how = {"pooling": "pooling allocator, as `spin up`", "on-demand": "on-demand allocator, the tests'"}[alloc]
            target(f"Spin component: instantiate + handle a lookup ≤ 200 µs p50 in-process ({how})",
                   f"{num(val)} µs p50 (host `{p.get('host_profile')}`){extra}", val <= 200,
                   f"by {num(val - 200)} µs")
    for k, limit, label in [("envoy_filter", 400, "Envoy filter ≤ 400 KiB"), ("spin_component", 600, "Spin component ≤ 600 KiB")]:
        s = sizes.get(k)
        if s:
            kib = s["bytes"] / KIB
            target(label, f"{kib:.1f} KiB", kib <= limit, f"by {kib - limit:.1f} KiB")
    for store, small, large in scale_rows:
        worst, worst_name = None, ""
        for ph, label in SCALE_PHASES:
            s, l = phase(small, ph), phase(large, ph)
            rr = ratio(l["p50_us"], s["p50_us"]) if s and l else None
            if rr is not None and (worst is None or rr > worst):
                worst, worst_name = rr, label
        errs = sum(x["errors"] for x in small["phases"] + large["phases"])
        target(f"Scale ({store}): every request's p50 at {num(large['seed'])} users within {SCALE_LIMIT}× of "
               f"{num(small['seed'])}",
               f"worst {fmt_ratio(worst)} ({worst_name}); {errs} errors", None if worst is None else worst <= SCALE_LIMIT and errs == 0)
    w("")

    text = "\n".join(out) + "\n"
    sys.stdout.write(text)
    if a.update:
        doc = open(a.update).read()
        if BEGIN not in doc or END not in doc:
            sys.exit(f"report.py: {a.update} has no {BEGIN} ... {END} section")
        head, rest = doc.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        open(a.update, "w").write(f"{head}{BEGIN}\n{text}{END}{tail}")
        print(f"report.py: updated {a.update}", file=sys.stderr)


if __name__ == "__main__":
    main()
