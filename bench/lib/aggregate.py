#!/usr/bin/env python3
"""Turn one run's records into a Markdown report and a JSON file.

    aggregate.py META_JSON RAW_JSONL OUT_MD OUT_JSON

Per cell (backend, app, connections): the median over the measured runs and
the spread (min-max) of req/s and latency, median transfer, total errors,
peak memory, and ratios of median req/s against uWSGI and against the Rust
ceiling measured in the same run. Skipped and failed backends are reported
as such, with their log tails. Standard library only.
"""
import json
import statistics
import sys

MIB = 1024 * 1024
REFERENCE = "uwsgi"
CEILING = "ceiling"
APP_TITLES = {
    "hello": "Bare WSGI hello world (`hello:app`, 14-byte body)",
    "flask": "Flask hello world (`flask_hello:app`)",
    "stream": "1 MiB response streamed in 16 chunks of 64 KiB (`stream:app`)",
    "upload": "1 MiB POST read fully, answered with its length (`upload:app`)",
    **{"post%dk" % k: "%d KiB POST read fully, answered with its length (`upload:app`, 1 connection)" % k
       for k in (8, 16, 64, 256)},
}


def run_figures(rec):
    w, mem, front = rec["wrk"], rec.get("mem") or {}, rec.get("front") or {}
    secs = w["duration_us"] / 1e6
    per_request_us = 1e6 / max(w["requests"], 1)
    return {
        # CPU the process tree used during the run, per request served: what the backend (or nginx) itself costs,
        # whichever of wrk, nginx and the backend the two shared cores ran out for.
        "cpu_us": mem["cpu_s"] * per_request_us if "cpu_s" in mem else None,
        "front_cpu_us": front["cpu_s"] * per_request_us if "cpu_s" in front else None,
        "rps": w["requests"] / secs,
        "p50_ms": w["p50_us"] / 1e3,
        "p99_ms": w["p99_us"] / 1e3,
        "mib_s": w["bytes"] / secs / MIB,
        "errors": sum(v for k, v in w.items() if k.startswith("err_")),
        "non2xx": w["err_status"],
        "socket_errors": w["err_connect"] + w["err_read"] + w["err_write"] + w["err_timeout"],
        "rss_mib": mem.get("peak_rss_kib", 0) / 1024,
        "pss_mib": mem.get("peak_pss_kib", 0) / 1024,
        "hwm_mib": mem.get("peak_hwm_kib", 0) / 1024,
        "procs": mem.get("max_procs", 0),
    }


def summarise(runs):
    figs = [run_figures(r) for r in runs]

    def col(k):
        return [f[k] for f in figs]

    out = {"runs": len(figs)}
    for k in ("rps", "p50_ms", "p99_ms", "mib_s", "rss_mib", "pss_mib", "hwm_mib"):
        out[k] = {"median": statistics.median(col(k)), "min": min(col(k)), "max": max(col(k))}
    for k in ("cpu_us", "front_cpu_us"):
        values = [v for v in col(k) if v is not None]
        out[k] = {"median": statistics.median(values), "min": min(values), "max": max(values)} if values else None
    out["errors"] = sum(col("errors"))
    out["non2xx"] = sum(col("non2xx"))
    out["socket_errors"] = sum(col("socket_errors"))
    out["procs"] = max(col("procs"))
    out["warmup_settled"] = all(r.get("warmup_settled", True) for r in runs)
    return out


def fmt_num(x):
    if x >= 1000:
        return "%.0f" % x
    if x >= 100:
        return "%.0f" % x
    if x >= 10:
        return "%.1f" % x
    return "%.2f" % x


def spread(d):
    return "%s (%s–%s)" % (fmt_num(d["median"]), fmt_num(d["min"]), fmt_num(d["max"]))


def main():
    meta_path, raw_path, out_md, out_json = sys.argv[1:5]
    with open(meta_path) as f:
        meta = json.load(f)
    records = []
    with open(raw_path) as f:
        for line in f:
            line = line.strip()
            if line:
                records.append(json.loads(line))

    apps, backends = meta["apps"], meta["backends"]
    ok = {}
    status = {}   # (backend, app) -> list of non-ok records
    for r in records:
        key = (r["backend"], r["app"])
        if r["status"] == "ok":
            ok.setdefault(key + (r["conns"],), []).append(r)
        else:
            status.setdefault(key, []).append(r)
    conns_seen = sorted({k[2] for k in ok}, reverse=True)
    conns_order = [int(c) for c in meta["settings"].split("CONNS=")[1].split(" WRK")[0].split()] \
        if "CONNS=" in meta["settings"] else conns_seen
    conns_order += [c for c in conns_seen if c not in conns_order]

    cells = {k: summarise(v) for k, v in ok.items()}

    lines = []
    m, v = meta["machine"], meta["versions"]
    lines.append("## End-to-end results (%s)" % meta["date_utc"])
    lines.append("")
    lines.append("wrk → nginx (1 worker) → backend, all on loopback on one machine. "
                 "Each cell: a warm-up, then the median of the measured runs with the "
                 "min–max spread in brackets.")
    lines.append("")
    lines.append("- Machine: %d CPUs, %s, Linux %s, %s RAM" % (m["nproc"], m["cpu"], m["kernel"], m["memory"]))
    if "busy_percent_before" in m:
        lines.append("- Before the run the CPUs were %.0f%% busy (load average %s)%s" % (
            m["busy_percent_before"], m["loadavg_before"],
            ": **the machine was not idle, so these figures are noisy**"
            if m["busy_percent_before"] > 10 else ""))
    lines.append("- Settings: %s" % meta["settings"])
    lines.append("- Command: `%s`" % meta["command"])
    lines.append("- Versions: " + "; ".join("%s %s" % (k, val) for k, val in v.items()))
    lines.append("")

    failures = []
    for app in apps:
        lines.append("### %s" % APP_TITLES.get(app, app))
        lines.append("")
        lines.append("| backend | conns | req/s | p50 ms | p99 ms | MiB/s | errors | peak RSS / PSS MiB (procs) "
                     "| CPU µs/req backend / nginx | × uWSGI | × ceiling |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for b in backends:
            notes = [r for r in status.get((b, app), []) if r["status"] in ("skipped", "failed")]
            for r in notes:
                if r["status"] == "failed":
                    failures.append(r)
            had_cell = False
            for c in conns_order:
                cell = cells.get((b, app, c))
                if cell is None:
                    continue
                had_cell = True
                ref = cells.get((REFERENCE, app, c))
                ceil = cells.get((CEILING, app, c))
                x_ref = "%.2f" % (cell["rps"]["median"] / ref["rps"]["median"]) if ref else "–"
                x_ceil = "%.2f" % (cell["rps"]["median"] / ceil["rps"]["median"]) if ceil else "–"
                err = str(cell["errors"])
                if cell["errors"]:
                    err = "**%d** (%d non-2xx, %d socket)" % (cell["errors"], cell["non2xx"], cell["socket_errors"])
                mark = "" if cell["warmup_settled"] else " ²"
                cpu = "%s / %s" % tuple(fmt_num(cell[k]["median"]) if cell.get(k) else "–"
                                        for k in ("cpu_us", "front_cpu_us"))
                lines.append("| %s%s | %d | %s | %s | %s | %s | %s | %s / %s (%d) | %s | %s | %s |" % (
                    b, mark, c, spread(cell["rps"]), spread(cell["p50_ms"]), spread(cell["p99_ms"]),
                    fmt_num(cell["mib_s"]["median"]), err,
                    fmt_num(cell["rss_mib"]["median"]), fmt_num(cell["pss_mib"]["median"]), cell["procs"],
                    cpu, x_ref, x_ceil))
            for r in notes:
                word = "skipped" if r["status"] == "skipped" else "**FAILED**"
                if had_cell and r["status"] == "skipped":
                    continue
                lines.append("| %s | – | %s: %s | | | | | | | | |" % (
                    b, word, r["reason"].replace("|", "\\|").replace("\n", " ")[:200]))
            if not had_cell and not notes:
                lines.append("| %s | – | no result recorded | | | | | | | | |" % b)
        lines.append("")

    lines.append("Columns: req/s, p50 and p99 latency (wrk, from the client through nginx) "
                 "as median (min–max) over the runs; MiB/s is response bytes read by wrk (the upload "
                 "moves req/s × 1 MiB of request bodies the other way); "
                 "errors are summed over the runs (non-2xx/3xx answers plus connect, read, write "
                 "and timeout socket errors); peak RSS / PSS is the largest sum over the backend's "
                 "process tree (nginx and wrk excluded) sampled every 0.2 s during each run, median "
                 "over runs, with the most processes seen; CPU µs/req is the user + system CPU time "
                 "the backend's process tree and nginx's used during each run divided by the requests "
                 "served (median over runs): what each side costs per request, whichever of them the "
                 "shared cores ran out for; × uWSGI and × ceiling are ratios of "
                 "median req/s to those backends' in the same run, app and connection count.")
    lines.append("")
    lines.append("¹ The ceiling answers the stream cell with the same 1 MiB body (in one write), and drains upload bodies.")
    lines.append("² The warm-ups did not settle (two in a row within 25% on req/s) before measuring.")
    lines.append("")
    warnings = [r for r in records if r["status"] == "done"
                and not r["reason"].endswith(": 0")]
    if warnings:
        lines.append("### Warnings")
        lines.append("")
        for r in warnings:
            lines.append("**%s / %s**: %s" % (r["backend"], r["app"], r["reason"]))
            lines.append("")
            if r.get("log_tail"):
                lines.append("```")
                lines.append(r["log_tail"].rstrip()[-3000:])
                lines.append("```")
                lines.append("")
    if failures:
        lines.append("### Failures")
        lines.append("")
        for r in failures:
            lines.append("**%s / %s**: %s" % (r["backend"], r["app"], r["reason"]))
            lines.append("")
            if r.get("log_tail"):
                lines.append("```")
                lines.append(r["log_tail"].rstrip())
                lines.append("```")
                lines.append("")

    with open(out_md, "w") as f:
        f.write("\n".join(lines))
    with open(out_json, "w") as f:
        json.dump({
            "meta": meta,
            "cells": [dict(backend=k[0], app=k[1], conns=k[2], **s) for k, s in sorted(cells.items())],
            "records": records,
        }, f, indent=1)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
