"""The environ dict: PEP 3333 native strings, every param, wsgi.* keys, the URL scheme, and wfastcgi's IIS path
rules with their settings and pyfcgi's opt-in improvements."""

import pytest

from conftest import web_config
from fcgi_client import cgi_params


def environ_of(server, path="/", **kw):
    resp = server.request(path, route="environ", **kw)
    assert resp.ended and resp.status == 200, resp
    return resp.json()["environ"]


def test_params_are_latin1_native_strings(any_bridge):
    env = environ_of(any_bridge, b"/caf\xc3\xa9/\xe2\x82\xac", query=b"q=caf\xc3\xa9&raw=\xff&enc=%C3%A9",
                     headers={"X-Name": b"J\xc3\xbcrgen"})
    assert env["PATH_INFO"] == "/caf\u00c3\u00a9/\u00e2\u0082\u00ac"
    assert env["QUERY_STRING"] == "q=caf\u00c3\u00a9&raw=\u00ff&enc=%C3%A9"
    assert env["HTTP_X_NAME"] == "J\u00c3\u00bcrgen"
    assert env["REQUEST_URI"] == "/caf\u00c3\u00a9/\u00e2\u0082\u00ac?q=caf\u00c3\u00a9&raw=\u00ff&enc=%C3%A9"
    # The round trip PEP 3333 promises: encode('latin-1') gives back the exact bytes.
    assert env["PATH_INFO"].encode("latin-1").decode("utf-8") == "/café/€"


def test_every_param_is_passed_and_nothing_from_os_environ(any_bridge):
    extra = {"REMOTE_USER": "DOMAIN\\alice", "X_CUSTOM_PARAM": "custom", b"X_N\xe9": b"v\xe9",
             "EMPTY_PARAM": "", "HTTP_COOKIE": "a=1; b=2"}
    params = cgi_params("/p", query="a=1", headers={"X-Route": "environ"}, extra=extra)
    with any_bridge.connect() as conn:
        resp = conn.request(params)
    env = resp.json()["environ"]
    types = resp.json()["types"]
    for name, value in params.items():
        name = name.decode("latin-1") if isinstance(name, bytes) else name
        value = value.decode("latin-1") if isinstance(value, bytes) else value
        assert env[name] == value, name
    for key, t in types.items():
        if "." not in key:
            assert t == "str", (key, t)
    assert "PYFCGI_TEST_RECORDS" not in env and "PATH" not in env


def test_multithread_is_true_with_several_workers(servers):
    server = servers("bridge:app", args=("--workers", "3"))
    env = server.request("/", route="environ").json()["environ"]
    assert env["wsgi.multithread"] is True


def test_wsgi_keys(any_bridge):
    resp = any_bridge.request("/", route="environ")
    data = resp.json()
    env = data["environ"]
    assert env["wsgi.version"] == {"tuple": [1, 0]}
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.multithread"] is False  # one worker thread by default, as under wfastcgi
    assert env["wsgi.multiprocess"] is True
    assert env["wsgi.run_once"] is False
    assert env["wsgi.input_terminated"] is True
    assert "wsgi.input" in env and "wsgi.errors" in env
    assert data["file_wrapper_callable"] and data["errors_methods"]


@pytest.mark.parametrize("extra, scheme", [
    ({"HTTPS": "on"}, "https"),
    ({"HTTPS": "ON"}, "https"),
    ({"HTTPS": "off"}, "http"),
    ({"REQUEST_SCHEME": "https"}, "https"),
    ({"REQUEST_SCHEME": "http"}, "http"),
    ({"HTTP_X_FORWARDED_PROTO": "https"}, "http"),
    ({"HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_FORWARDED_SSL": "on", "HTTP_FORWARDED": "proto=https"}, "http"),
])
def test_url_scheme_from_https_or_request_scheme_only(any_bridge, extra, scheme):
    assert environ_of(any_bridge, extra=extra)["wsgi.url_scheme"] == scheme


def test_duplicate_body_headers_are_removed(any_bridge):
    env = environ_of(any_bridge, "/", method="POST", body=b"abc", content_type="text/plain",
                     extra={"HTTP_CONTENT_TYPE": "text/plain", "HTTP_CONTENT_LENGTH": "3"})
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert env["CONTENT_TYPE"] == "text/plain" and env["CONTENT_LENGTH"] == "3"


def test_missing_cgi_keys_get_defaults(any_bridge):
    params = cgi_params("/", headers={"X-Route": "environ"})
    for name in ("SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "REQUEST_METHOD"):
        del params[name]
    with any_bridge.connect() as conn:
        env = conn.request(params).json()["environ"]
    assert env["SCRIPT_NAME"] == "" and env["PATH_INFO"] == "" and env["QUERY_STRING"] == ""
    assert env["REQUEST_METHOD"] == "GET"


def test_non_iis_paths_are_untouched(bridge):
    env = environ_of(bridge, "/x/y", extra={"SCRIPT_NAME": "/mount", "HTTP_X_ORIGINAL_URL": "/evil"})
    assert env["SCRIPT_NAME"] == "/mount" and env["PATH_INFO"] == "/x/y"
    assert "wfastcgi.http_x_original_url" not in env


# ---- IIS (wfastcgi.md §3) ----

def test_iis_clears_script_name_and_adds_raw_keys(any_bridge):
    env = environ_of(any_bridge, "/test/this", query="a=%20b&c=\xe9", iis=True)
    assert env["PATH_INFO"] == "/test/this"
    assert env["SCRIPT_NAME"] == ""
    assert env["wsgi.path_info"] == {"bytes": "/test/this"}
    assert env["wsgi.script_name"] == {"bytes": ""}
    assert env["wsgi.query_string"] == {"bytes": "a=%20b&c=\xe9"}
    assert env["QUERY_STRING"] == "a=%20b&c=\xe9"
    assert "wfastcgi.http_x_original_url" not in env
    assert env["APPL_MD_PATH"] == "/LM/W3SVC/1/ROOT"


def test_iis_detected_by_appl_md_path_alone(bridge):
    params = cgi_params("/a/b", headers={"X-Route": "environ"},
                        extra={"SCRIPT_NAME": "/a/b", "APPL_MD_PATH": "/LM/W3SVC/1/ROOT"})
    with bridge.connect() as conn:
        env = conn.request(params).json()["environ"]
    assert env["SCRIPT_NAME"] == "" and env["wsgi.path_info"] == {"bytes": "/a/b"}


def test_iis_utf8_path_bytes(any_bridge):
    env = environ_of(any_bridge, b"/caf\xc3\xa9", iis=True)
    assert env["PATH_INFO"] == "/caf\u00c3\u00a9"
    assert env["wsgi.path_info"]["bytes"].encode("latin-1") == b"/caf\xc3\xa9"


def test_iis_x_original_url_replaces_path_info(any_bridge):
    env = environ_of(any_bridge, "/handler.fcgi/rewritten", iis=True,
                     headers={"X-Original-URL": "/fob/oar/baz?x=1"})
    assert env["PATH_INFO"] == "/fob/oar/baz"
    assert env["SCRIPT_NAME"] == ""
    assert env["wsgi.path_info"] == {"bytes": "/fob/oar/baz"}
    assert env["wfastcgi.http_x_original_url"] == {"bytes": "/fob/oar/baz?x=1"}
    assert env["HTTP_X_ORIGINAL_URL"] == "/fob/oar/baz?x=1"


def test_iis_query_is_stripped_from_path_info(any_bridge):
    # IIS has already decoded %3F into '?'; wfastcgi cuts there (its known bug, kept for compatibility).
    env = environ_of(any_bridge, "/a?b/c", iis=True)
    assert env["PATH_INFO"] == "/a" and env["wsgi.path_info"] == {"bytes": "/a"}


def test_iis_allow_path_info_for_script_mappings_keeps_script_name(servers):
    # Only presence counts, whatever the value.
    server = servers("bridge:app", env={"AllowPathInfoForScriptMappings": "0"})
    env = environ_of(server, "/test/this", iis=True)
    assert env["SCRIPT_NAME"] == "/test/this" and env["PATH_INFO"] == "/test/this"
    assert env["wsgi.script_name"] == {"bytes": "/test/this"}


def test_iis_script_name_setting_splits_a_case_insensitive_prefix(servers):
    server = servers("bridge:app", files={"web.config": web_config({"SCRIPT_NAME": "/Test"})})
    env = environ_of(server, "/test/this", iis=True)
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/Test", "/this")
    assert env["wsgi.script_name"] == {"bytes": "/Test"} and env["wsgi.path_info"] == {"bytes": "/this"}
    # No segment-boundary check, as in wfastcgi.
    env = environ_of(server, "/testing", iis=True)
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/Test", "ing")
    env = environ_of(server, "/other", iis=True)
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("", "/other")
    # Applied to IIS requests only.
    env = environ_of(server, "/test/this")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("", "/test/this")


def test_iis_script_name_with_trailing_slash_leaves_path_info_without_one(servers):
    server = servers("bridge:app", env={"SCRIPT_NAME": "/app/"})
    env = environ_of(server, "/app/page", iis=True)
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app/", "page")


def test_opt_in_script_name_from_appl_md_path(servers):
    server = servers("bridge:app", env={"PYFCGI_SCRIPT_NAME_FROM_APPL_MD_PATH": "1"})
    md = {"APPL_MD_PATH": "/LM/W3SVC/1/ROOT/shop"}
    env = environ_of(server, "/shop/cart", iis=server.iis_params(**md))
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/shop", "/cart")
    env = environ_of(server, "/Shop", iis=server.iis_params(**md))
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/Shop", "")
    env = environ_of(server, "/shopping", iis=server.iis_params(**md))
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("", "/shopping")
    env = environ_of(server, "/x", iis=True)  # the site root has no mount prefix
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("", "/x")


def test_without_opt_in_appl_md_path_is_ignored(bridge):
    env = environ_of(bridge, "/shop/cart", iis=bridge.iis_params(APPL_MD_PATH="/LM/W3SVC/1/ROOT/shop"))
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("", "/shop/cart")


def test_opt_in_path_info_from_request_uri(servers):
    server = servers("bridge:app", env={"PYFCGI_PATH_INFO_FROM_REQUEST_URI": "true"})
    # IIS turned the non-ASCII character into '?' in PATH_INFO; REQUEST_URI has the exact, encoded path.
    env = environ_of(server, "/caf?/a?b", iis=True,
                     extra={"REQUEST_URI": "/caf%C3%A9/a%3Fb?x=1", "QUERY_STRING": "x=1"})
    assert env["wsgi.path_info"]["bytes"].encode("latin-1") == "/café/a?b".encode("utf-8")
    assert env["PATH_INFO"] == "/caf\u00c3\u00a9/a?b"
    assert env["QUERY_STRING"] == "x=1"


# ---- environs built one after another on one worker ----
# pyfcgi copies each environ from a template of the last request with the same parameter names (src/wsgi/environ.rs).
# These requests go through one kept connection, so one worker thread and its templates serve them all.

class Pairs(dict):
    """Params with repeated names, in order (a dict cannot hold them)."""

    def __init__(self, pairs):
        super().__init__(pairs)
        self.pairs = list(pairs)

    def items(self):
        return self.pairs


def kept_environs(server, param_sets):
    with server.connect() as conn:
        out = []
        for params in param_sets:
            resp = conn.request(params, keep_conn=True)
            assert resp.ended and resp.status == 200, resp
            out.append(resp.json()["environ"])
        return out


def environ_params(path="/", query="", **kw):
    query = "&".join(filter(None, [query, "x=environ"]))
    return cgi_params(path, query=query, headers={"X-Route": "environ", **kw.pop("headers", {})}, **kw)


def test_each_kept_request_sees_only_its_own_values(bridge):
    sets = [environ_params(f"/p{i}", query=f"n={i}", headers={"X-Value": f"v{i % 2}", "Cookie": f"c={i}"},
                           extra={"REMOTE_PORT": str(50000 + i)}) for i in range(6)]
    for i, env in enumerate(kept_environs(bridge, sets)):
        for name, value in sets[i].items():
            assert env[name] == (value.decode("latin-1") if isinstance(value, bytes) else value), (i, name)
        assert env["HTTP_X_VALUE"] == f"v{i % 2}" and env["HTTP_COOKIE"] == f"c={i}"


def test_app_changes_to_its_environ_do_not_reach_the_next_request(bridge):
    first = environ_params("/same", query="mutate=1")
    second = environ_params("/same", query="mutate=1")
    envs = kept_environs(bridge, [first, second, second])
    for env in envs:
        assert env["PATH_INFO"] == "/same" and env["HTTP_HOST"] == "localhost"
        assert env["SERVER_NAME"] == "localhost" and "framework.request" not in env


def test_repeated_names_keep_the_last_value_on_every_request(bridge):
    sets = []
    for i in range(4):
        base = list(environ_params("/dup").items())
        sets.append(Pairs(base + [("X_DUP", f"first{i}"), ("X_DUP", "second" if i < 2 else f"second{i}")]))
    envs = kept_environs(bridge, sets)
    assert [env["X_DUP"] for env in envs] == ["second", "second", "second2", "second3"]


def test_scheme_and_iis_detection_follow_values_with_the_same_names(bridge):
    sets = [
        environ_params("/a", extra={"HTTPS": "on"}),
        environ_params("/a", extra={"HTTPS": "off"}),
        environ_params("/a", extra={"HTTPS": "on"}),
        environ_params("/b/c", extra={"HTTPS": "on", "SERVER_SOFTWARE": "Microsoft-IIS/10.0", "SCRIPT_NAME": "/b/c"}),
        environ_params("/b/d", extra={"HTTPS": "on", "SERVER_SOFTWARE": "Microsoft-IIS/10.0", "SCRIPT_NAME": "/b/d"}),
        environ_params("/b/c", extra={"HTTPS": "on", "SCRIPT_NAME": "/b/c"}),
    ]
    envs = kept_environs(bridge, sets)
    assert [env["wsgi.url_scheme"] for env in envs] == ["https", "http", "https", "https", "https", "https"]
    # IIS clears SCRIPT_NAME and adds the raw-bytes keys; nginx's values are passed as they are.
    assert [(env["SCRIPT_NAME"], env["PATH_INFO"]) for env in envs[3:]] == [("", "/b/c"), ("", "/b/d"), ("/b/c", "/b/c")]
    assert envs[3]["wsgi.path_info"] == {"bytes": "/b/c"} and envs[4]["wsgi.path_info"] == {"bytes": "/b/d"}
    assert "wsgi.path_info" not in envs[5] and "wsgi.path_info" not in envs[0]


def test_iis_derived_keys_follow_each_request(bridge):
    sets = [
        environ_params(f"/h.fcgi/{i}", iis=bridge.iis_params(), headers={"X-Original-URL": f"/orig/{i}?q={i}"})
        for i in range(3)
    ] + [environ_params("/plain/path", iis=bridge.iis_params(), headers={"X-Original-URL": "/orig/2?q=2"})]
    envs = kept_environs(bridge, sets)
    for i, env in enumerate(envs[:3]):
        assert env["PATH_INFO"] == f"/orig/{i}" and env["wsgi.path_info"] == {"bytes": f"/orig/{i}"}
        assert env["wfastcgi.http_x_original_url"] == {"bytes": f"/orig/{i}?q={i}"}
        assert env["wsgi.query_string"] == {"bytes": "x=environ"}
    assert envs[3]["PATH_INFO"] == "/orig/2" and envs[3]["REQUEST_URI"].startswith("/plain/path")


def test_many_different_name_sets_in_turn(bridge):
    # More distinct sets than the templates a worker keeps, visited twice, each with its own extra names.
    sets = [environ_params("/n", extra={f"X_EXTRA_{j}": f"{j}" for j in range(i)}) for i in range(7)] * 2
    envs = kept_environs(bridge, sets)
    for params, env in zip(sets, envs):
        extra = {k for k in env if k.startswith("X_EXTRA_")}
        assert extra == {k for k in params if k.startswith("X_EXTRA_")}


def test_a_param_named_like_a_wsgi_key_does_not_override_it(bridge):
    sets = [environ_params("/w", extra={"wsgi.url_scheme": f"gopher{i}", "wsgi.run_once": "yes"}) for i in range(2)]
    for env in kept_environs(bridge, sets):
        assert env["wsgi.url_scheme"] == "http" and env["wsgi.run_once"] is False
