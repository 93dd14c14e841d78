"""Errors at import, call, iteration and close: a traceback in the log, a safe 500 (with the traceback only when
debugging is on), FCGI_STDERR only when asked for; the log itself (wsgi.errors, print, sys.stderr, the access
line, an unusable WSGI_LOG); application threads; and the process keeps serving after every failure."""

import time

import pytest

from conftest import web_config
from fcgi_client import cgi_params
from test_response import assert_safe_500

TB = "Traceback (most recent call last)"


@pytest.mark.parametrize("route, query, message", [
    ("call_error", "tag=c1", "ValueError: failure in the call c1"),
    ("iter_error", "tag=i1", "KeyError: 'failure in iteration i1'"),
    ("close_error", "tag=x1", "OSError: failure in close x1"),
])
def test_app_exception_is_logged_with_traceback_and_answered_with_a_safe_500(bridge, route, query, message):
    mark = bridge.mark()
    resp = bridge.request("/", route=route, query=query)
    assert_safe_500(resp)
    log = bridge.log_since(mark)
    assert "Error occurred:" in log and TB in log and message in log
    assert "bridge.py" in log, "the traceback must point into the application"
    assert message.encode() not in resp.body
    bridge.assert_serving()


def test_close_error_after_a_complete_body_ends_the_request_normally_on_a_kept_connection(bridge):
    # The body went out whole: the response is complete, so it ends with END_REQUEST and the connection stays
    # (cutting it made nginx log "upstream prematurely closed connection" and close its client's connection).
    mark = bridge.mark()
    with bridge.connect() as conn:
        params = cgi_params("/", query="tag=x2&body=1", headers={"X-Route": "close_error"})
        resp = conn.request(params, keep_conn=True)
        assert resp.ended and resp.status == 200 and resp.body == b"body", resp
        again = conn.request(cgi_params("/", headers={"X-Route": "hello"}), keep_conn=True)
        assert again.ended and again.status == 200 and again.body == b"hello"
    log = bridge.log_since(mark)
    assert "OSError: failure in close x2" in log and TB in log and "bridge.py" in log
    assert "after the response was sent" in log
    [line] = bridge.wait_access_lines("tag=x2", 1, mark)
    assert "done method=GET" in line and "status=200" in line, line


def test_exception_at_import_is_a_500_and_the_process_stays(servers):
    server = servers("import_error:app")
    for _ in range(2):
        mark = server.mark()
        resp = server.request("/")
        assert_safe_500(resp)
        log = server.log_since(mark)
        assert "Error occurred while reading WSGI handler" in log
        assert TB in log and "RuntimeError: import-time failure in import_error.py" in log
        assert "import_error.py is being imported" in log  # its print() went to the log
    assert server.proc.poll() is None


@pytest.mark.parametrize("how", [{"args": ["--debug"]}, {"env": {"PYFCGI_DEBUG": "1"}},
                                 {"files": {"web.config": web_config({"PYFCGI_DEBUG": "true"})}}])
def test_debug_shows_the_traceback_in_the_page(servers, how):
    server = servers("bridge:app", **how)
    resp = server.request("/", route="call_error", query="tag=<d1>")
    assert resp.ended and resp.status == 500
    assert TB.encode() in resp.body and b"ValueError: failure in the call &lt;d1&gt;" in resp.body
    assert resp.stderr == b""
    server.assert_serving()


@pytest.mark.parametrize("how", [{"args": ["--debug"]}, {"env": {"PYFCGI_DEBUG": "1"}}])
def test_debug_shows_import_errors_in_the_page(servers, how):
    server = servers("import_error:app", **how)
    resp = server.request("/")
    assert resp.ended and resp.status == 500
    assert TB.encode() in resp.body and b"import-time failure in import_error.py" in resp.body


@pytest.mark.parametrize("how", [{"args": ["--errors-to-stderr"]}, {"env": {"PYFCGI_ERRORS_TO_STDERR": "1"}}])
def test_errors_to_stderr_sends_the_report_as_fcgi_stderr(servers, how):
    server = servers("bridge:app", **how)
    resp = server.request("/", route="call_error", query="tag=s1")
    assert resp.ended and resp.status == 500
    err = resp.stderr.decode()
    assert err.startswith("Error occurred:") and TB in err and "ValueError: failure in the call s1" in err
    assert TB.encode() not in resp.body, "stderr mode must not put the traceback in the page"
    # Successful requests send nothing on FCGI_STDERR, even when the app writes to its error streams.
    resp = server.request("/", route="logging", query="tag=quiet")
    assert resp.ended and resp.status == 200 and resp.stderr == b""


@pytest.mark.parametrize("how", [{"args": ["--errors-to-stderr"]}, {"env": {"PYFCGI_ERRORS_TO_STDERR": "1"}}])
def test_errors_to_stderr_for_import_errors(servers, how):
    server = servers("import_error:app", **how)
    resp = server.request("/")
    assert resp.ended and resp.status == 500
    err = resp.stderr.decode()
    assert err.startswith("Error occurred while reading WSGI handler:") and "import-time failure" in err


def test_nothing_on_fcgi_stderr_by_default(bridge):
    for route in ("call_error", "iter_error", "close_error", "str_body", "logging"):
        resp = bridge.request("/", route=route)
        assert resp.ended and resp.stderr == b"", (route, resp)
        assert not any(r.type == 7 for r in resp.records), route


def test_wsgi_errors_print_and_sys_stderr_go_to_the_log(bridge):
    mark = bridge.mark()
    resp = bridge.request("/", route="logging", query="tag=L1")
    assert resp.ended and resp.status == 200 and resp.stderr == b""
    log = bridge.log_since(mark)
    for line in ("wsgi.errors line L1", "print line L1", "sys.stderr line L1"):
        assert line in log, log
    assert len([line for line in log.splitlines() if "L1" in line and "pyfcgi::python" in line]) == 3


def test_one_access_line_per_request(bridge):
    mark = bridge.mark()
    bridge.request("/acc-a", route="hello")
    bridge.request("/acc-b", route="call_error", query="tag=a1")
    bridge.request("/acc-c", route="hello", method="POST", body=b"xyz")
    lines = bridge.wait_access_lines("uri=/acc-", 3, mark)
    assert len(lines) == 3, lines
    assert "method=GET" in lines[0] and "uri=/acc-a" in lines[0] and "status=200" in lines[0]
    assert "uri=/acc-b?tag=a1" in lines[1] and "status=500" in lines[1]
    assert "method=POST" in lines[2] and "status=200" in lines[2]
    assert all(f"[{bridge.proc.pid}]" in line for line in lines), lines


@pytest.mark.parametrize("how", [{"args": ["--no-access-log"]}, {"env": {"PYFCGI_ACCESS_LOG": "0"}}])
def test_access_log_can_be_turned_off(servers, how):
    server = servers("bridge:app", **how)
    server.request("/", route="hello")
    server.request("/", route="call_error")
    time.sleep(0.3)  # access lines are written in batches a few milliseconds after the response
    assert server.access_lines() == []


@pytest.mark.parametrize("where", ["env", "web.config"])
def test_wsgi_log_file_receives_the_log(servers, tmp_path, where):
    logfile = tmp_path / "logs" / "site.log"
    kw = {"env": {"WSGI_LOG": str(logfile)}} if where == "env" else \
        {"files": {"web.config": web_config({"WSGI_LOG": str(logfile)})}}
    server = servers("bridge:app", watch_log=logfile, **kw)
    server.request("/", route="logging", query="tag=F1")
    text = server.wait_log("pyfcgi::access")
    assert "print line F1" in text and "pyfcgi::access" in text and "serving FastCGI" in text
    assert "print line F1" not in server.stderr_path.read_text()


@pytest.mark.parametrize("where", ["env", "web.config", "cli"])
def test_unopenable_wsgi_log_is_reported_once_and_the_site_serves(servers, where, tmp_path):
    bad = tmp_path  # a directory cannot be opened as a log file
    kw = {"env": {"WSGI_LOG": str(bad)}} if where == "env" else \
        {"files": {"web.config": web_config({"WSGI_LOG": str(bad)})}} if where == "web.config" else \
        {"args": ["--log-file", str(bad)]}
    server = servers("bridge:app", **kw)
    for _ in range(3):
        server.assert_serving()
    resp = server.request("/", route="call_error")
    assert_safe_500(resp)
    server.assert_serving()
    reports = [line for line in server.log().splitlines() if "WSGI_LOG cannot be opened" in line]
    assert len(reports) == 1, reports
    assert str(bad) in reports[0]


def test_python_threads_run_while_the_server_is_idle(bridge):
    resp = bridge.request("/", route="thread")
    assert resp.ended and resp.body == b"started"
    start = len(bridge.record("ticks"))
    time.sleep(0.6)  # no requests: every worker is waiting for a connection
    ticks = len(bridge.record("ticks"))
    assert ticks - start >= 5, f"the app's thread only ticked {ticks - start} times in 0.6 s of idle time"
