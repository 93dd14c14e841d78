"""WSGI_HANDLER resolution with wfastcgi's behaviours and messages (wfastcgi.md §2), retrying failed imports on
the next request without ever exiting, and `pyfcgi check`."""

import subprocess

import pytest

from conftest import BIN, clean_env, web_config
from test_response import assert_safe_500

TB = "Traceback (most recent call last)"


@pytest.mark.parametrize("handler, body", [
    ("handlers.app", b"handlers.app"),
    ("handlers.factory()", b"made by factory"),
    ("handlers.callable_app", b"callable object"),
    ("pkg.mod.holder.inner.app", b"pkg.mod attribute chain"),
    ("handlers:app", b"handlers.app"),
    ("handlers:create_app()", b"made by create_app"),
    ("pkg.mod:holder.inner.app", b"pkg.mod attribute chain"),
])
def test_good_handlers(servers, handler, body):
    server = servers(handler)
    for _ in range(3):
        resp = server.request("/")
        assert resp.ended and resp.status == 200 and resp.body == body
    # A factory is called exactly once, however many requests follow.
    if handler.endswith("()"):
        assert len(server.record("factory")) == 1, server.record("factory")


def test_handler_from_environment(servers):
    server = servers(None, env={"WSGI_HANDLER": "handlers.app"})
    assert server.request("/").body == b"handlers.app"


def failing(servers, handler, env=None):
    """Starts a server whose handler cannot be resolved; returns it and the log of one failing request."""
    server = servers(handler, env=env)
    mark = server.mark()
    resp = server.request("/")
    assert_safe_500(resp)
    log = server.log_since(mark)
    assert "Error occurred while reading WSGI handler" in log
    # The process stays, and keeps answering (and retrying).
    assert_safe_500(server.request("/"))
    assert server.proc.poll() is None
    return server, log


def test_bad_module(servers):
    _, log = failing(servers, "x.y")
    assert '"x.y" could not be imported: ' + TB in log
    assert "ModuleNotFoundError: No module named 'x'" in log


def test_bad_module_colon_form(servers):
    _, log = failing(servers, "nosuchmodule:app")
    assert '"nosuchmodule:app" could not be imported' in log and "No module named 'nosuchmodule'" in log


def test_bad_attribute_propagates(servers):
    _, log = failing(servers, "handlers.nosuch")
    assert "AttributeError: module 'handlers' has no attribute 'nosuch'" in log and TB in log
    assert "could not be imported" not in log


def test_handler_resolving_to_none(servers):
    _, log = failing(servers, "handlers.none_app")
    assert '"handlers.none_app" could not be imported' in log


def test_bare_module_name(servers):
    _, log = failing(servers, "handlers")
    assert '"handlers" could not be imported' in log


def test_missing_wsgi_handler(servers):
    _, log = failing(servers, None)
    assert "WSGI_HANDLER env var must be set" in log


def test_empty_wsgi_handler(servers):
    _, log = failing(servers, None, env={"WSGI_HANDLER": ""})
    assert "WSGI_HANDLER env var must be set" in log


@pytest.mark.parametrize("handler", ["handlers.app()", "handlers.callable_app()"])
def test_calling_the_app_itself_gives_a_type_error_and_a_hint(servers, handler):
    _, log = failing(servers, handler)
    assert "TypeError" in log and "required positional arguments" in log
    assert "Hint: WSGI_HANDLER ends in '()'" in log and "drop the '()'" in log


def test_import_failure_is_retried_on_the_next_request(servers):
    server = servers("flaky.app", files={"flaky.py": "raise ImportError('not yet deployed')\n"})
    mark = server.mark()
    assert_safe_500(server.request("/"))
    assert "not yet deployed" in server.log_since(mark)
    (server.root / "flaky.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'fixed and deployed']\n")
    resp = server.request("/")
    assert resp.ended and resp.status == 200 and resp.body == b"fixed and deployed"
    server.assert_serving()


def test_error_report_names_the_settings_and_sys_path(servers):
    _, log = failing(servers, "x.y")
    assert "WSGI_HANDLER = x.y (command line)" in log
    assert "sys.path:" in log


# ---- pyfcgi check ----

def run_check(root, *args, env=None):
    proc = subprocess.run([str(BIN), "check", "--app-root", str(root), *args], capture_output=True, text=True,
                          env=clean_env(env), timeout=60, cwd=str(root))
    return proc.returncode, proc.stdout + proc.stderr


def test_check_good_configuration(tmp_path):
    import shutil

    from conftest import APPS

    root = tmp_path / "site"
    shutil.copytree(APPS, root)
    (root / "web.config").write_text(web_config({"WSGI_HANDLER": "handlers.app"}))
    rc, out = run_check(root, env={"PYFCGI_TEST_RECORDS": str(tmp_path)})
    assert rc == 0, out
    assert "OK: the application imports and is callable." in out
    assert 'WSGI_HANDLER "handlers.app" resolves to' in out
    assert f"WSGI_HANDLER = handlers.app ({root / 'web.config'})" in out
    assert str(root) in out


@pytest.mark.parametrize("args, env, message", [
    (["--app", "x.y"], None, '"x.y" could not be imported'),
    ([], None, "WSGI_HANDLER env var must be set"),
    (["--app", "handlers.app()"], None, "Hint: WSGI_HANDLER ends in '()'"),
    ([], {"PYFCGI_DEBUG": "maybe", "WSGI_HANDLER": "handlers.app"}, "PYFCGI_DEBUG"),
])
def test_check_bad_configuration(tmp_path, args, env, message):
    import shutil

    from conftest import APPS

    root = tmp_path / "site"
    shutil.copytree(APPS, root)
    rc, out = run_check(root, *args, env={"PYFCGI_TEST_RECORDS": str(tmp_path), **(env or {})})
    assert rc == 1, out
    assert message in out, out
