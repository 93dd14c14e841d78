"""The log admins live with (issue 12): WSGI_LOG rotated by size (PYFCGI_LOG_ROTATE), reopened on SIGUSR1 after
logrotate renamed it, shared by several processes without a broken line, and warnings about misbehaving peers
rate-limited so a flood of malformed connections cannot fill the disk."""

import os
import re
import signal
import socket
import threading
import time

from fcgi_client import cgi_params
from test_response import assert_safe_500

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z \[(\d+)\]  ?(TRACE|DEBUG|INFO|WARN|ERROR) ")


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_a_flood_of_malformed_connections_logs_a_few_warnings_and_one_summary(servers):
    server = servers("bridge:app", transport="tcp")
    mark = server.mark()
    flood = 300
    for _ in range(flood):
        # Each connection comes from a new port; the limiter counts per host.
        with socket.create_connection(server.socket, timeout=5) as s:
            s.sendall(b"GARBAGE! not FastCGI at all")
            s.settimeout(5)
            assert s.recv(100) == b"", "the server closes a connection that does not speak FastCGI"
    server.assert_serving()
    warnings = [line for line in server.log_since(mark).splitlines() if "closing FastCGI connection" in line]
    assert len(warnings) == 10, (len(warnings), warnings[:3])
    assert server.stop() == 0
    summaries = [line for line in server.log_since(mark).splitlines() if "left out of the log" in line]
    assert len(summaries) == 1, summaries
    assert f"suppressed={flood - 10}" in summaries[0] and "peer=127.0.0.1 " in summaries[0], summaries[0]
    assert 'kind="protocol"' in summaries[0] or "kind=protocol" in summaries[0], summaries[0]


def test_wsgi_log_rotates_by_size_and_keeps_the_configured_number_of_files(servers, tmp_path):
    log = tmp_path / "site.log"
    limit = 8 * 1024
    server = servers("bridge:app", watch_log=log,
                     env={"WSGI_LOG": str(log), "PYFCGI_LOG_ROTATE": f"size={limit // 1024}KB,keep=2"})
    for i in range(300):
        resp = server.request(f"/rot-{i}", route="hello")
        assert resp.ended and resp.status == 200
    wait_for(lambda: "uri=/rot-299 " in log.read_text(), what="the last access line")
    files = [log, tmp_path / "site.log.1", tmp_path / "site.log.2"]
    for f in files:
        assert f.is_file(), f
        text = f.read_text()
        assert len(text.encode()) <= limit, (f, len(text.encode()))
        assert all(LINE.match(line) for line in text.splitlines()), f
    assert not (tmp_path / "site.log.3").exists(), "keep=2 keeps two old files"
    # The newest lines are in the live file, the older ones in .1 and .2, in order.
    numbers = [int(m) for f in reversed(files) for m in re.findall(r"uri=/rot-(\d+) ", f.read_text())]
    assert numbers == sorted(numbers) and numbers[-1] == 299, numbers[-20:]
    assert server.proc.poll() is None


def test_an_invalid_log_rotate_value_is_a_configuration_error(servers, tmp_path):
    server = servers("bridge:app", env={"PYFCGI_LOG_ROTATE": "size=lots"})
    assert "PYFCGI_LOG_ROTATE = " in server.log() and "is not valid" in server.log()
    assert_safe_500(server.request("/", route="hello"))


def test_sigusr1_reopens_a_renamed_wsgi_log_and_keeps_serving(servers, tmp_path):
    log = tmp_path / "site.log"
    server = servers("bridge:app", watch_log=log, env={"WSGI_LOG": str(log)})
    assert server.request("/before-rotation", route="hello").status == 200
    wait_for(lambda: "uri=/before-rotation " in log.read_text(), what="the first access line")
    rotated = tmp_path / "site.log.1"
    os.rename(log, rotated)  # what logrotate does before its postrotate `kill -USR1`
    server.proc.send_signal(signal.SIGUSR1)
    wait_for(log.exists, what="the log to be reopened at its path")
    assert server.request("/after-rotation", route="hello").status == 200
    wait_for(lambda: "uri=/after-rotation " in log.read_text(), what="the access line in the new file")
    assert server.proc.poll() is None, "SIGUSR1 must not kill pyfcgi"
    old, new = rotated.read_text(), log.read_text()
    assert "uri=/before-rotation " in old and "uri=/after-rotation " not in old
    assert "uri=/before-rotation " not in new and "log file reopened" in new


def test_two_processes_appending_to_one_wsgi_log_write_only_whole_lines_with_their_pids(servers, tmp_path):
    log = tmp_path / "shared.log"
    a = servers("bridge:app", watch_log=log, env={"WSGI_LOG": str(log)})
    b = servers("bridge:app", watch_log=log, env={"WSGI_LOG": str(log)}, expect_ready=False)
    # The shared log already says "serving FastCGI" (a's line): wait for b's own.
    wait_for(lambda: any("serving FastCGI" in line and f"[{b.proc.pid}]" in line for line in b.log().splitlines()),
             timeout=20, what="the second server")
    per_thread = 60
    errors = []

    def hammer(server, name):
        try:
            with server.connect() as conn:
                for i in range(per_thread):
                    params = cgi_params("/", query=f"tag={name}-{i}", headers={"X-Route": "long_log"})
                    resp = conn.request(params, keep_conn=True)
                    assert resp.ended and resp.status == 200
        except Exception as e:  # reported below: a thread's assertion would otherwise vanish
            errors.append(e)

    threads = [threading.Thread(target=hammer, args=(s, f"{n}{t}")) for s, n in ((a, "a"), (b, "b")) for t in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    total = 2 * 3 * per_thread
    wait_for(lambda: log.read_text().count("pyfcgi::access") >= total, what="every access line")
    pids = {str(a.proc.pid), str(b.proc.pid)}
    long_lines = {}
    for line in log.read_text().splitlines():
        m = LINE.match(line)
        assert m, f"a line that does not start with a timestamp and a pid: {line[:200]!r}"
        assert m.group(1) in pids, line[:200]
        if "long line " in line:
            tag = re.search(r"long line (\S+) ", line).group(1)
            assert line.endswith(" " + "x" * 5000 + ' end stream="stdout"'), f"a broken long line: {line[:100]!r}...{line[-100:]!r}"
            # The tag names the server: its lines carry that server's pid.
            assert m.group(1) == str((a if tag.startswith("a") else b).proc.pid)
            long_lines[tag] = long_lines.get(tag, 0) + 1
    assert len(long_lines) == total and set(long_lines.values()) == {1}
