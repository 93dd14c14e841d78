#!/usr/bin/env python3
"""Sample the memory of a process tree until told to stop.

    rss.py ROOT_PID OUT_JSON [INTERVAL_S]

Every INTERVAL_S (default 0.2) it finds ROOT_PID and all its descendants
through /proc/*/stat and reads VmRSS and VmHWM from /proc/PID/status. On
SIGTERM/SIGINT it writes JSON:
  peak_rss_kib   the largest sum of VmRSS over the tree seen in one sample
  peak_hwm_kib   the largest sum of VmHWM (each process's own peak) seen
  peak_pss_kib   the largest sum of Pss (smaps_rollup) seen: shared pages
                 split between the processes sharing them, so a forking
                 server's tree is not counted twice
  max_procs      the most processes seen in the tree at once
  samples        how many samples were taken
  cpu_s          CPU time (user + system) the tree used between the first
                 and the last sample, children that exited and were reaped
                 included (through the reaper's cutime/cstime); divided by
                 the requests served it says how much CPU the backend itself
                 spent per request, whatever nginx and wrk cost
"""
import json
import os
import signal
import sys
import time


def children_map():
    kids = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # the command name is in parentheses and may contain spaces
        rest = stat[stat.rfind(b")") + 2:].split()
        kids.setdefault(int(rest[1]), []).append(int(name))
    return kids


def tree(root):
    kids = children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, ()))
    return out


def status_kib(pid):
    rss = hwm = 0
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except OSError:
        return None
    return rss, hwm


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid):
    """utime + stime + cutime + cstime of one process, in clock ticks."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2:].split()
    # Fields 14-17 of proc(5), counted from the state field (3) here.
    return sum(int(v) for v in fields[11:15])


def pss_kib(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    root, out = int(sys.argv[1]), sys.argv[2]
    interval = float(sys.argv[3]) if len(sys.argv) > 3 else 0.2
    result = {"peak_rss_kib": 0, "peak_hwm_kib": 0, "peak_pss_kib": 0, "max_procs": 0, "samples": 0, "cpu_s": 0.0}
    first_cpu = None
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    signal.signal(signal.SIGINT, lambda *a: stop.append(1))
    while not stop:
        rss = hwm = pss = procs = cpu = 0
        for pid in tree(root):
            st = status_kib(pid)
            ticks = cpu_ticks(pid)
            if st is None or ticks is None:
                continue
            cpu += ticks
            rss += st[0]
            hwm += st[1]
            pss += pss_kib(pid)
            procs += 1
        if procs:
            result["peak_rss_kib"] = max(result["peak_rss_kib"], rss)
            result["peak_hwm_kib"] = max(result["peak_hwm_kib"], hwm)
            result["peak_pss_kib"] = max(result["peak_pss_kib"], pss)
            result["max_procs"] = max(result["max_procs"], procs)
            result["samples"] += 1
            first_cpu = cpu if first_cpu is None else first_cpu
            result["cpu_s"] = (cpu - first_cpu) / TICKS
        time.sleep(interval)
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
