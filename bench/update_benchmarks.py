"""Regenerates the result sections of BENCHMARKS.md from the harness output, so the document is never edited by hand.

    python3 bench/update_benchmarks.py --run bench/results/full [--run bench/results/stream] [--memory FILE]

Replaces the text between `<!-- NAME:begin -->` and `<!-- NAME:end -->` markers: `results` with the harness's
Markdown reports (RUN/latest.md of each --run, in order), `memory` with the output of bench/memory_startup.py, and
`targets` with the issue's targets checked against the runs' medians. A later --run replaces the earlier runs'
cells of the same apps, so each target's ratio always compares backends measured in one run. Stdlib only.
"""

import argparse
import json
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cell(cells, backend, app, conns):
    for c in cells:
        if c["backend"] == backend and c["app"] == app and c["conns"] == conns and c.get("rps"):
            return c
    return None


def rate(c, key="rps"):
    return c[key]["median"] if c else None


def ratio(a, b):
    return a / b if a and b else None


def targets(data):
    cells = data["cells"]
    rows = []

    def add(name, value, goal, note=""):
        if value is None:
            rows.append((name, "not measured", goal, "–", note))
            return
        met = value >= goal if goal >= 0 else value <= -goal
        shown = f"{value:.2f}×" if goal >= 0 else f"{value:.2f}×"
        rows.append((name, shown, f"≥ {goal}×" if goal >= 0 else f"≤ {-goal}×", "met" if met else "missed", note))

    def r(backend, app, conns, other):
        return ratio(rate(cell(cells, backend, app, conns)), rate(cell(cells, other, app, conns)))

    def fd0_note(app, conns, other):
        value = r("pyfcgi-fd0", app, conns, other)
        return f"the same binary spawned on fd 0: {value:.2f}×" if value else ""

    def cpu(backend, app, conns, key="cpu_us"):
        c = cell(cells, backend, app, conns)
        return c[key]["median"] if c and c.get(key) else None

    def cpu_note(app, conns):
        figures = [(name, cpu(b, app, conns)) for name, b in (("pyfcgi", "pyfcgi-bind"), ("uWSGI", "uwsgi"))]
        figures.append(("nginx (pyfcgi cell)", cpu("pyfcgi-bind", app, conns, "front_cpu_us")))
        shown = ", ".join(f"{name} {value:.0f}" for name, value in figures if value is not None)
        ceiling = r("ceiling", app, conns, "uwsgi")
        parts = [f"CPU µs per request: {shown}"] if shown else []
        if ceiling:
            parts.append(f"the ceiling (no Python) reaches {ceiling:.2f}× uWSGI here")
        return "; ".join(parts)

    add("hello, 16 conns: pyfcgi / uWSGI (req/s)", r("pyfcgi-bind", "hello", 16, "uwsgi"), 2,
        fd0_note("hello", 16, "uwsgi"))
    add("hello, 16 conns: pyfcgi / ceiling (req/s)", r("pyfcgi-bind", "hello", 16, "ceiling"), 0.75,
        fd0_note("hello", 16, "ceiling"))
    add("hello, 1 conn: pyfcgi / ceiling (req/s)", r("pyfcgi-bind", "hello", 1, "ceiling"), 0.85,
        fd0_note("hello", 1, "ceiling"))
    add("Flask hello, 16 conns: pyfcgi / uWSGI (req/s)", r("pyfcgi-bind", "flask", 16, "uwsgi"), 1.3,
        fd0_note("flask", 16, "uwsgi"))
    for app, label in (("stream", "1 MiB streamed response"), ("upload", "1 MiB POST read by the app")):
        for conns in (16, 1):
            # MiB/s of the 1 MiB bodies: requests per second times 1 MiB (wrk counts only response bytes).
            add(
                f"{label}, {conns} conn{'s' if conns > 1 else ''}: pyfcgi / uWSGI (MiB/s)",
                r("pyfcgi-bind", app, conns, "uwsgi"),
                2,
                cpu_note(app, conns),
            )
    p, u = cell(cells, "pyfcgi-bind", "hello", 16), cell(cells, "uwsgi", "hello", 16)
    if p and u and p.get("rss_mib") and u.get("rss_mib"):
        add("hello peak RSS: pyfcgi / uWSGI (whole process tree)", p["rss_mib"]["median"] / u["rss_mib"]["median"], -1)
    lines = ["| target | measured | goal | verdict | note |", "|---|---:|---:|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows]
    return "\n".join(lines)


def replace(text, name, content):
    pattern = re.compile(rf"(<!-- {name}:begin -->\n).*?(\n<!-- {name}:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"BENCHMARKS.md has no {name} markers")
    return pattern.sub(lambda m: m.group(1) + content.strip() + m.group(2), text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", required=True, help="a harness OUT_DIR (latest.md, latest.json)")
    parser.add_argument("--memory", help="output of bench/memory_startup.py")
    parser.add_argument("--doc", default=os.path.join(ROOT, "BENCHMARKS.md"))
    args = parser.parse_args()
    cells, reports = [], []
    for run in args.run:
        with open(os.path.join(run, "latest.json")) as f:
            data = json.load(f)
        apps = {c["app"] for c in data["cells"]}
        cells = [c for c in cells if c["app"] not in apps] + data["cells"]
        with open(os.path.join(run, "latest.md")) as f:
            # The harness's own heading would duplicate the document's.
            reports.append(re.sub(r"^## (.*)\n", r"### Run: \1\n", f.read(), count=1))
    with open(args.doc) as f:
        text = f.read()
    text = replace(text, "results", "\n\n".join(reports))
    text = replace(text, "targets", targets({"cells": cells}))
    if args.memory:
        with open(args.memory) as f:
            text = replace(text, "memory", re.sub(r"^## .*\n", "", f.read(), count=1))
    with open(args.doc, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
