"""Settings: web.config appSettings over the environment and the command line over both, <location> blocks, every
appSetting exported to os.environ and re-applied before each request, PYTHONPATH from web.config, the app root on
sys.path and as cwd, pass-through keys, and IIS-style loading from APPL_PHYSICAL_PATH on the first request."""

import os
import time

import pytest

from conftest import web_config

SETTINGS = {"WSGI_HANDLER": "settings_app.app", "MY_SETTING": "from-web-config", "MY_OTHER": "other",
            "DJANGO_SETTINGS_MODULE": "mysite.settings"}


def state(server, **kw):
    resp = server.request("/", **kw)
    assert resp.ended and resp.status == 200, (resp, server.log()[-2000:])
    return resp.json()


def test_web_config_overrides_the_environment(servers):
    server = servers(None, env={"WSGI_HANDLER": "which.env_app"},
                     files={"web.config": web_config({"WSGI_HANDLER": "which.web_app"})})
    assert server.request("/").body == b"web.config"


def test_command_line_overrides_web_config_and_environment(servers):
    server = servers("which.cli_app", env={"WSGI_HANDLER": "which.env_app"},
                     files={"web.config": web_config({"WSGI_HANDLER": "which.web_app"})})
    assert server.request("/").body == b"cli"


def test_environment_is_used_without_web_config(servers):
    assert servers(None, env={"WSGI_HANDLER": "which.env_app"}).request("/").body == b"env"


def test_precedence_for_pyfcgi_settings(servers):
    # web.config switches debugging off although the environment switches it on ...
    server = servers("bridge:app", env={"PYFCGI_DEBUG": "1"},
                     files={"web.config": web_config({"PYFCGI_DEBUG": "false"})})
    resp = server.request("/", route="call_error")
    assert resp.status == 500 and b"Traceback" not in resp.body
    # ... and the command line switches it on again.
    server = servers("bridge:app", args=["--debug"], files={"web.config": web_config({"PYFCGI_DEBUG": "false"})})
    resp = server.request("/", route="call_error")
    assert resp.status == 500 and b"Traceback" in resp.body


def test_location_blocks_count(servers):
    server = servers(None, files={"web.config": web_config({"MY_SETTING": "outside"},
                                                           location={"WSGI_HANDLER": "which.web_app"})})
    assert server.request("/").body == b"web.config"


def test_web_config_file_name_in_any_case(servers):
    server = servers(None, files={"WEB.CONFIG": web_config({"WSGI_HANDLER": "which.web_app"})})
    assert server.request("/").body == b"web.config"


def test_app_settings_are_exported_and_reapplied_before_each_request(servers):
    server = servers(None, env={"ONLY_IN_ENV": "from-env"}, files={"web.config": web_config(SETTINGS)})
    first = state(server)["environ"]
    assert first["MY_SETTING"] == "from-web-config" and first["MY_OTHER"] == "other"
    assert first["WSGI_HANDLER"] == "settings_app.app"
    assert first["DJANGO_SETTINGS_MODULE"] == "mysite.settings"
    assert first["ONLY_IN_ENV"] == "from-env"
    # The app changed MY_SETTING, deleted MY_OTHER and changed ONLY_IN_ENV: the web.config values come back,
    # a variable that is not an appSetting keeps the app's change (as in wfastcgi).
    second = state(server)["environ"]
    assert second["MY_SETTING"] == "from-web-config" and second["MY_OTHER"] == "other"
    assert second["ONLY_IN_ENV"] == "mutated-by-app"


def test_pythonpath_from_web_config_is_expanded_and_appended(servers):
    settings = {"WSGI_HANDLER": "settings_app.app", "PYTHONPATH": "%LIBROOT%/one;%LIBROOT%/two;%NOSUCHVAR%/three",
                "LIBROOT": "{ROOT}/libs"}
    server = servers(None, files={"web.config": web_config(settings)})
    root = str(server.root)
    path = state(server)["sys_path"]
    assert path[-3:] == [root + "/libs/one", root + "/libs/two", "/three"], path
    assert path[0] == root


def test_module_found_through_web_config_pythonpath(servers, tmp_path):
    libroot = tmp_path / "shared"
    (libroot / "one").mkdir(parents=True)
    (libroot / "one" / "libmod.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'libmod from PYTHONPATH']\n")
    server = servers(None, files={"web.config": web_config(
        {"WSGI_HANDLER": "libmod.app", "LIBROOT": str(libroot), "PYTHONPATH": "%LIBROOT%/one"})})
    assert server.request("/").body == b"libmod from PYTHONPATH"


def test_app_root_is_first_on_sys_path_and_the_working_directory(servers):
    server = servers("settings_app.app")
    got = state(server)
    assert got["sys_path"][0] == str(server.root)
    assert os.path.samefile(got["cwd"], server.root)


# ---- IIS style: the app root and its web.config come with the first request ----

def iis_server(servers, settings=SETTINGS):
    server = servers(None, use_app_root_flag=False, files={"web.config": web_config(settings)})
    # Nothing was known at start-up (the process runs elsewhere and has no WSGI_HANDLER), so it still serves.
    assert "WSGI_HANDLER env var must be set" in server.log()
    return server


def test_iis_web_config_is_read_from_appl_physical_path_on_the_first_request(servers):
    server = iis_server(servers)
    got = state(server, iis=True)
    root = str(server.root)
    assert got["environ"]["MY_SETTING"] == "from-web-config"
    assert got["environ"]["DJANGO_SETTINGS_MODULE"] == "mysite.settings"
    assert got["sys_path"][0].rstrip("/") == root
    assert os.path.samefile(got["cwd"], root)
    # Read once per process, like wfastcgi: later edits are not seen until a restart.
    (server.root / "web.config").write_text(web_config({**SETTINGS, "MY_SETTING": "edited"}))
    assert state(server, iis=True)["environ"]["MY_SETTING"] == "from-web-config"


def test_iis_pythonpath_from_web_config(servers):
    server = iis_server(servers, {"WSGI_HANDLER": "libmod.app", "PYTHONPATH": "{ROOT}/libs/one"})
    resp = server.request("/", iis=True)
    assert resp.ended and resp.body == b"libmod from PYTHONPATH"


# ---- start-up settings in web.config: applied when the app root is known at start-up, else reported ----

def max_values(server) -> dict:
    with server.connect() as conn:
        return conn.get_values(["FCGI_MAX_CONNS", "FCGI_MAX_REQS"])


def test_start_up_settings_in_web_config_apply_when_the_app_root_is_known(servers):
    server = servers(None, files={"web.config": web_config(
        {"WSGI_HANDLER": "which.web_app", "PYFCGI_WORKERS": "3", "PYFCGI_MAX_CONNS": "7"})})
    assert max_values(server) == {b"FCGI_MAX_CONNS": b"7", b"FCGI_MAX_REQS": b"3"}
    assert server.request("/").body == b"web.config"
    assert "is ignored" not in server.log()


def test_start_up_settings_in_web_config_read_on_the_first_request_are_logged_as_ignored(servers):
    server = iis_server(servers, {**SETTINGS, "PYFCGI_WORKERS": "3"})
    state(server, iis=True)
    log = server.wait_log('PYFCGI_WORKERS = "3" in ')
    assert "is ignored: set it as a FastCGI environment variable, because it takes effect at start-up" in log
    assert "PYFCGI_APP_ROOT" in log
    # What the process really does: the setting from web.config did not apply.
    assert max_values(server)[b"FCGI_MAX_REQS"] == b"1"


def test_log_level_from_web_config_applies_once_web_config_is_read(servers):
    server = iis_server(servers, {**SETTINGS, "PYFCGI_LOG_LEVEL": "warn"})
    assert "serving FastCGI" in server.log()  # info, before web.config was read
    mark = server.mark()
    state(server, iis=True)
    state(server, iis=True)
    time.sleep(0.3)  # access lines are written in batches a few milliseconds after the response
    assert server.access_lines(mark) == [], server.log_since(mark)
    # The same site without the setting logs each request.
    control = iis_server(servers)
    mark = control.mark()
    state(control, iis=True)
    assert len(control.wait_access_lines("pyfcgi::access", 1, mark)) == 1, control.log_since(mark)
