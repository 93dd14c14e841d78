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
BODY_MIB = 1.0  # the stream app answers and the upload app receives 1 MiB per request


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

    hello16 = {b: cell(cells, b, "hello", 16) for b in ("pyfcgi-bind", "uwsgi", "ceiling")}
    hello1 = {b: cell(cells, b, "hello", 1) for b in ("pyfcgi-bind", "ceiling")}
    add("hello, 16 conns: pyfcgi / uWSGI (req/s)", ratio(rate(hello16["pyfcgi-bind"]), rate(hello16["uwsgi"])), 2)
    add("hello, 16 conns: pyfcgi / ceiling (req/s)", ratio(rate(hello16["pyfcgi-bind"]), rate(hello16["ceiling"])), 0.75)
    add("hello, 1 conn: pyfcgi / ceiling (req/s)", ratio(rate(hello1["pyfcgi-bind"]), rate(hello1["ceiling"])), 0.85)
    flask = {b: cell(cells, b, "flask", 16) for b in ("pyfcgi-bind", "uwsgi")}
    add("Flask hello, 16 conns: pyfcgi / uWSGI (req/s)", ratio(rate(flask["pyfcgi-bind"]), rate(flask["uwsgi"])), 1.3)
    for app, label in (("stream", "1 MiB streamed response"), ("upload", "1 MiB POST read by the app")):
        for conns in (16, 1):
            p, u = cell(cells, "pyfcgi-bind", app, conns), cell(cells, "uwsgi", app, conns)
            # MiB/s of the 1 MiB bodies: requests per second times 1 MiB (wrk counts only response bytes).
            add(
                f"{label}, {conns} conn{'s' if conns > 1 else ''}: pyfcgi / uWSGI (MiB/s)",
                ratio(rate(p), rate(u)),
                2,
                "the ceiling shows this cell's limit is nginx and wrk (below)" if app == "stream" else "",
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
