#!/usr/bin/env python3
"""Print the run's metadata as JSON: machine, versions of every backend and
tool, the exact command and settings. Standard library only."""
import argparse
import datetime
import json
import os
import platform
import subprocess


def run(argv, timeout=10):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "unavailable (%s)" % e
    out = (p.stdout + p.stderr).strip()
    return out.splitlines()[0] if out else "exit %d, no output" % p.returncode


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def mem_total():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return "%.1f GiB" % (int(line.split()[1]) / 1024 / 1024)
    except OSError:
        pass
    return "unknown"


def idle_check(seconds=1.0):
    """CPU busy share over SECONDS, and the load averages, before any load:
    the benchmark shares the machine with whatever else runs on it."""
    import time

    def snap():
        with open("/proc/stat") as f:
            vals = [int(x) for x in f.readline().split()[1:]]
        return sum(vals), vals[3] + vals[4]   # total, idle + iowait

    t0, i0 = snap()
    time.sleep(seconds)
    t1, i1 = snap()
    busy = 100.0 * (1 - (i1 - i0) / max(1, t1 - t0))
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    return {"busy_percent_before": round(busy, 1), "loadavg_before": load}


def main():
    ap = argparse.ArgumentParser()
    for name in ("venv", "pyfcgi", "ceiling", "command", "settings", "apps", "backends"):
        ap.add_argument("--" + name, default="")
    a = ap.parse_args()
    vpy = os.path.join(a.venv, "bin", "python")
    pkgs = json.loads(subprocess.run(
        [vpy, "-c", "import importlib.metadata as m, json; print(json.dumps({n: m.version(n) for n in "
         "('flask','werkzeug','uwsgi','flup','wfastcgi','gunicorn','waitress')}))"],
        capture_output=True, text=True, check=True).stdout)
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    commit = run(["git", "-C", repo, "rev-parse", "--short", "HEAD"])
    dirty = run(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"])
    meta = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": a.command,
        "settings": a.settings,
        "apps": a.apps.split(),
        "backends": a.backends.split(),
        "machine": {
            "nproc": len(os.sched_getaffinity(0)),
            "cpu": cpu_model(),
            "kernel": platform.release(),
            "memory": mem_total(),
            **idle_check(),
        },
        "versions": {
            "python": run([vpy, "-c", "import sys; print(sys.version.split()[0], sys.executable)"]),
            "nginx": run(["nginx", "-v"]),
            "wrk": run(["wrk", "-v"]),
            "uwsgi": run([os.path.join(a.venv, "bin", "uwsgi"), "--version"]),
            **{"py:" + k: v for k, v in pkgs.items()},
            "pyfcgi": (run([a.pyfcgi, "--version"]) if a.pyfcgi and os.path.exists(a.pyfcgi)
                       else "not run (PYFCGI_BIN unset or missing)"),
            "ceiling": (a.ceiling if os.path.exists(a.ceiling) else "not built"),
            "repo": commit + (" (dirty)" if dirty and not dirty.startswith("exit") else ""),
        },
    }
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
