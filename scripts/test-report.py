#!/usr/bin/env python3
"""The summary of `make test` (scripts/test.sh): one line per stage with its passed / failed /
skipped counts and its time, then the plain closing line `N passed, M failed`.

  test-report.py tee LOG              copy stdin to stdout and to LOG, each line time-stamped in LOG
  test-report.py record DIR NAME KIND STATUS SECONDS LOG
                                      file one stage's result (KIND says how LOG is counted)
  test-report.py summary DIR          print the table and the closing line; exit 1 if anything failed

Counting, by KIND:
  cargo-split  cargo test output: each test binary's `test result:` line, attributed to the stage
          of its `Running <path>` line (see CARGO_STAGES), so one `cargo test --workspace` run
          reports the core, the Spin component in wasmtime, the real Spin and the Envoy e2e
          separately, each with the time between its binaries' first and last lines
  plain   the last `N passed, M failed[, K skipped]` line (with an optional `word:` before it),
          plus every cargo `test result:` line
  node    node's test runner: the `ℹ pass N` / `ℹ fail N` / `ℹ skipped N` lines, summed
  check   no counts: the stage is one check, passed or failed by its exit status
In every kind a line `<name>: SKIPPED: <why>` counts one skipped instead of one passed (a test
that skips still passes) and its reason is shown; a
stage that exited non-zero with no failure counted counts one failed (a build error, a crash).
"""
import json
import re
import sys
import time
from pathlib import Path


def cargo_stage(binary):
    """The stage of a cargo test binary, from its file name in target/…/deps (`<name>-<hash>`):
    a crate's unit tests are named after the crate, an integration test after its file."""
    name = re.sub(r"-[0-9a-f]{16}$", "", Path(binary).name)
    stems = lambda d: {p.stem.replace("-", "_") for p in Path(d).glob("*.rs")}
    if name == "scim_edge_core" or name in stems("plugin/core/tests"):
        return "core"
    if name.startswith("real_spin"):
        return "real Spin"
    if name.startswith("envoy_"):
        return "Envoy e2e"
    if name.startswith("scim_edge_host_tests") or name in stems("host-tests/tests") or name in stems("host-tests/src/bin"):
        return "Spin component (wasmtime)"
    return "other crates"


RUNNING = re.compile(r"^\s*(Running|Doc-tests)\s+(.*?)(\s+\(.*\))?\s*$")
RESULT = re.compile(r"test result: (ok|FAILED)\. (\d+) passed; (\d+) failed; (\d+) ignored")
PLAIN = re.compile(r"^(?:\S+: )?(\d+) passed, (\d+) failed(?:, (\d+) skipped)?\s*$")
SKIPPED = re.compile(r"^(\S[^:]*): SKIPPED: (.*)$")


def tee(log):
    with open(log, "a", encoding="utf-8", errors="replace") as out:
        for line in sys.stdin.buffer:
            sys.stdout.buffer.write(line)
            sys.stdout.flush()
            out.write(f"{time.time():.3f} {line.decode('utf-8', 'replace')}")


def lines_of(log):
    """(timestamp or None, text) per line; logs not written by `tee` have no timestamps."""
    for raw in Path(log).read_text(encoding="utf-8", errors="replace").splitlines():
        stamp, _, text = raw.partition(" ")
        try:
            yield float(stamp), text
        except ValueError:
            yield None, raw


def count(kind, log, stage):
    """[(stage name, passed, failed, skipped, seconds or None, [reasons])]"""
    if not Path(log).is_file():
        return [(stage, 0, 0, 0, None, [f"no log at {log}"])]
    rows = {}

    def row(name):
        return rows.setdefault(name, {"p": 0, "f": 0, "s": 0, "t0": None, "t1": None, "why": []})

    current = stage
    plain = None
    for ts, text in lines_of(log):
        m = RUNNING.match(text)
        if kind == "cargo-split" and m:
            if m.group(1) == "Doc-tests":
                current = "core" if m.group(2) == "scim_edge_core" else "other crates"
            else:
                current = cargo_stage((m.group(3) or "").strip(" ()") or m.group(2))
        r = row(current if kind == "cargo-split" else stage)
        if ts is not None:
            r["t0"] = ts if r["t0"] is None else r["t0"]
            r["t1"] = ts
        if (m2 := RESULT.search(text)):
            r["p"] += int(m2.group(2))
            r["f"] += int(m2.group(3))
            r["s"] += int(m2.group(4))
        if kind == "plain" and (m2 := PLAIN.match(text.strip())):
            plain = tuple(int(g or 0) for g in m2.groups())
        if kind == "node":
            for word, key in (("pass", "p"), ("fail", "f"), ("skipped", "s")):
                if (m2 := re.match(rf"^ℹ {word} (\d+)$", text.strip())):
                    r[key] += int(m2.group(1))
        if (m2 := SKIPPED.match(text.strip())):
            r["s"] += 1
            r["skipped_lines"] = r.get("skipped_lines", 0) + 1
            r["why"].append(f"{m2.group(1)}: {m2.group(2)}")
    if kind == "plain":
        r = row(stage)
        if plain:
            r["p"], r["f"], r["s"] = r["p"] + plain[0], r["f"] + plain[1], r["s"] + plain[2]
    out = []
    for name, r in rows.items():
        if kind != "cargo-split" and name != stage:
            continue
        if kind == "cargo-split" and name == stage and r["p"] + r["f"] + r["s"] == 0 and len(rows) > 1:
            continue  # the build's lines before the first test binary
        # A test that skipped (said so in a SKIPPED line) still reported itself as passed.
        r["p"] = max(0, r["p"] - r.get("skipped_lines", 0)) if kind != "check" else r["p"]
        secs = None if r["t0"] is None else r["t1"] - r["t0"]
        out.append((name, r["p"], r["f"], r["s"], secs, r["why"]))
    return out


def record(directory, name, kind, status, seconds, log):
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    n = len(list(d.glob("*.json")))
    (d / f"{n:02d}.json").write_text(
        json.dumps({"name": name, "kind": kind, "status": int(status), "seconds": float(seconds), "log": log})
    )


def summary(directory):
    rows = []
    for f in sorted(Path(directory).glob("*.json")):
        st = json.loads(f.read_text())
        if st["kind"] == "check":
            ok = st["status"] == 0
            rows.append((st["name"], int(ok), int(not ok), 0, st["seconds"], []))
            continue
        counted = count(st["kind"], st["log"], st["name"])
        failed_somewhere = any(c[2] for c in counted)
        if st["status"] != 0 and not failed_somewhere:
            # The stage failed without a failing test to show for it: count it once.
            name, p, fl, s, secs, why = counted[-1] if counted else (st["name"], 0, 0, 0, None, [])
            counted = counted[:-1] + [(name, p, fl + 1, s, secs, why + [f"exited with status {st['status']}"])]
        if len(counted) == 1:
            name, p, fl, s, _, why = counted[0]
            counted = [(name, p, fl, s, st["seconds"], why)]
        rows.extend(counted)
    print()
    print("==> summary of make test")
    print(f"  {'stage':<28} {'passed':>7} {'failed':>7} {'skipped':>8} {'time':>9}")
    total_p = total_f = total_s = 0
    for name, p, fl, s, secs, why in rows:
        total_p, total_f, total_s = total_p + p, total_f + fl, total_s + s
        t = "" if secs is None else f"{secs:8.0f}s"
        mark = "  FAILED" if fl else ""
        print(f"  {name:<28} {p:>7} {fl:>7} {s:>8} {t:>9}{mark}")
        for w in why:
            print(f"  {'':<28} {w}")
    print(f"{total_p} passed, {total_f} failed, {total_s} skipped")
    return 1 if total_f else 0


def main(argv):
    if len(argv) == 3 and argv[1] == "tee":
        tee(argv[2])
        return 0
    if len(argv) == 8 and argv[1] == "record":
        record(*argv[2:])
        return 0
    if len(argv) == 3 and argv[1] == "summary":
        return summary(argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
