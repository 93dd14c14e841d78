"""Regenerates the result sections of BENCHMARKS.md from the harness output, so the document is never edited by hand.

    python3 bench/update_benchmarks.py --run bench/results/full [--memory bench/results/full/memory.md]

Replaces the text between `<!-- NAME:begin -->` and `<!-- NAME:end -->` markers: `results` with the harness's
Markdown report (RUN/latest.md), `memory` with the output of bench/memory_startup.py, and `targets` with the
issue's targets checked against RUN/latest.json (same run, medians). Stdlib only.
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
    parser.add_argument("--run", required=True, help="the harness's OUT_DIR (with latest.md and latest.json)")
    parser.add_argument("--memory", help="output of bench/memory_startup.py")
    parser.add_argument("--doc", default=os.path.join(ROOT, "BENCHMARKS.md"))
    args = parser.parse_args()
    with open(os.path.join(args.run, "latest.json")) as f:
        data = json.load(f)
    with open(os.path.join(args.run, "latest.md")) as f:
        report = f.read()
    with open(args.doc) as f:
        text = f.read()
    # The harness's own heading would duplicate the document's.
    report = re.sub(r"^## .*\n", "", report, count=1)
    text = replace(text, "results", report)
    text = replace(text, "targets", targets(data))
    if args.memory:
        with open(args.memory) as f:
            text = replace(text, "memory", re.sub(r"^## .*\n", "", f.read(), count=1))
    with open(args.doc, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
