//! Building the ASGI HTTP connection scope from a request's FastCGI params. The path rules are the WSGI
//! environ's ([`crate::wsgi::environ`]): `root_path` is SCRIPT_NAME and `path` is SCRIPT_NAME + PATH_INFO (the
//! spec's "PATH_INFO can be derived by stripping root_path from path"), with wfastcgi's IIS rules for requests
//! from IIS; `raw_path` is REQUEST_URI up to the query, as the web server received it; headers come back from the
//! `HTTP_*` params (plus CONTENT_TYPE/CONTENT_LENGTH), lower-cased with `_` turned into `-`, in the order the
//! web server sent them. The byte-level parts are plain functions, tested without Python.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::protocol::Params;
use crate::wsgi::environ::{iis_paths, is_iis, url_scheme, PathRules};

/// The ASGI HTTP spec version this server implements: 2.4 is the one where `send()` raises an `OSError` once the
/// client is gone (Starlette then stops streaming instead of listening for `http.disconnect` in parallel).
pub const SPEC_VERSION: &str = "2.4";

/// `root_path` and `path` as bytes (before UTF-8 decoding).
pub fn paths(params: &Params, rules: &PathRules) -> (Vec<u8>, Vec<u8>) {
    let (path_info, script_name) = if is_iis(params) {
        iis_paths(params, rules)
    } else {
        (
            params.get(b"PATH_INFO").unwrap_or_default().to_vec(),
            params.get(b"SCRIPT_NAME").unwrap_or_default().to_vec(),
        )
    };
    let mut path = script_name.clone();
    path.extend_from_slice(&path_info);
    if path.is_empty() {
        path.push(b'/');
    }
    (script_name, path)
}

/// `raw_path`: REQUEST_URI (nginx, Apache, lighttpd and IIS all send it, undecoded) without its query.
pub fn raw_path(params: &Params) -> Option<&[u8]> {
    let uri = params.get(b"REQUEST_URI")?;
    Some(uri.split(|b| *b == b'?').next().unwrap_or_default())
}

/// `http_version` from SERVER_PROTOCOL: `HTTP/1.1` → `1.1`, `HTTP/2.0` → `2`; 1.1 when absent or unknown.
pub fn http_version(params: &Params) -> &'static str {
    match params.get(b"SERVER_PROTOCOL").unwrap_or_default() {
        b"HTTP/1.0" => "1.0",
        b"HTTP/2" | b"HTTP/2.0" => "2",
        b"HTTP/3" | b"HTTP/3.0" => "3",
        _ => "1.1",
    }
}

/// A request header from a param name, lower-cased: `HTTP_ACCEPT_ENCODING` → `accept-encoding`, and the two body
/// headers CGI sends without the prefix. `None` for every other param.
pub fn header_name(name: &[u8], has_content_type: bool, has_content_length: bool) -> Option<Vec<u8>> {
    let lower = |bytes: &[u8]| -> Vec<u8> {
        bytes
            .iter()
            .map(|b| if *b == b'_' { b'-' } else { b.to_ascii_lowercase() })
            .collect()
    };
    match name {
        b"CONTENT_TYPE" => Some(b"content-type".to_vec()),
        b"CONTENT_LENGTH" => Some(b"content-length".to_vec()),
        // Some servers send the body headers twice; the unprefixed ones are what CGI defines.
        b"HTTP_CONTENT_TYPE" if has_content_type => None,
        b"HTTP_CONTENT_LENGTH" if has_content_length => None,
        _ => name.strip_prefix(b"HTTP_").filter(|rest| !rest.is_empty()).map(lower),
    }
}

/// The request headers as (name, value) byte pairs, in the order of the params.
pub fn headers(params: &Params) -> Vec<(Vec<u8>, &[u8])> {
    let non_empty = |name: &[u8]| params.get(name).is_some_and(|v| !v.is_empty());
    let has_type = non_empty(b"CONTENT_TYPE");
    let has_length = non_empty(b"CONTENT_LENGTH");
    params
        .iter()
        .filter(|(name, value)| {
            // nginx sends CONTENT_TYPE and CONTENT_LENGTH empty for requests without a body.
            !((*name == b"CONTENT_TYPE" || *name == b"CONTENT_LENGTH") && value.is_empty())
        })
        .filter_map(|(name, value)| header_name(name, has_type, has_length).map(|n| (n, value)))
        .collect()
}

fn address<'py>(py: Python<'py>, host: Option<&[u8]>, port: Option<&[u8]>) -> PyResult<Bound<'py, PyAny>> {
    let Some(host) = host.filter(|h| !h.is_empty()) else {
        return Ok(py.None().into_bound(py));
    };
    let port: Option<u16> = port
        .and_then(|p| std::str::from_utf8(p).ok())
        .and_then(|p| p.trim().parse().ok());
    let host = PyString::new(py, &String::from_utf8_lossy(host));
    Ok(PyTuple::new(py, [host.into_any(), port.into_pyobject(py)?.into_any()])?.into_any())
}

/// What every scope of one application shares.
pub struct ScopeDefaults {
    pub rules: PathRules,
    /// `{"version": "3.0", "spec_version": ...}`, shared by every scope (applications do not change it).
    pub asgi: Py<PyDict>,
    /// `{"http.response.pathsend": {}}`, a fresh copy per scope.
    pub extensions: Py<PyDict>,
}

impl ScopeDefaults {
    pub fn new(py: Python<'_>, rules: PathRules) -> PyResult<Self> {
        let asgi = PyDict::new(py);
        asgi.set_item("version", "3.0")?;
        asgi.set_item("spec_version", SPEC_VERSION)?;
        let extensions = PyDict::new(py);
        extensions.set_item("http.response.pathsend", PyDict::new(py))?;
        Ok(Self {
            rules,
            asgi: asgi.unbind(),
            extensions: extensions.unbind(),
        })
    }
}

/// Builds the scope. `state` is the lifespan namespace, copied shallowly as the spec asks.
///
/// # Errors
/// Only on Python memory errors.
pub fn build<'py>(
    py: Python<'py>,
    params: &Params,
    defaults: &ScopeDefaults,
    state: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let scope = PyDict::new(py);
    scope.set_item(intern!(py, "type"), intern!(py, "http"))?;
    scope.set_item(intern!(py, "asgi"), defaults.asgi.bind(py))?;
    scope.set_item(intern!(py, "http_version"), PyString::intern(py, http_version(params)))?;
    let method = params.get(b"REQUEST_METHOD").unwrap_or(b"GET").to_ascii_uppercase();
    let method = match std::str::from_utf8(&method) {
        Ok(text) => PyString::intern(py, text),
        Err(_) => PyString::new(py, &String::from_utf8_lossy(&method)),
    };
    scope.set_item(intern!(py, "method"), method)?;
    scope.set_item(intern!(py, "scheme"), PyString::intern(py, url_scheme(params)))?;
    let (root_path, path) = paths(params, &defaults.rules);
    scope.set_item(intern!(py, "path"), PyString::new(py, &String::from_utf8_lossy(&path)))?;
    match raw_path(params) {
        Some(raw) => scope.set_item(intern!(py, "raw_path"), PyBytes::new(py, raw))?,
        None => scope.set_item(intern!(py, "raw_path"), py.None())?,
    }
    let query = params.get(b"QUERY_STRING").unwrap_or_default();
    scope.set_item(intern!(py, "query_string"), PyBytes::new(py, query))?;
    scope.set_item(
        intern!(py, "root_path"),
        PyString::new(py, &String::from_utf8_lossy(&root_path)),
    )?;
    let headers = PyList::empty(py);
    for (name, value) in self::headers(params) {
        headers.append(PyTuple::new(py, [PyBytes::new(py, &name), PyBytes::new(py, value)])?)?;
    }
    scope.set_item(intern!(py, "headers"), headers)?;
    scope.set_item(
        intern!(py, "client"),
        address(py, params.get(b"REMOTE_ADDR"), params.get(b"REMOTE_PORT"))?,
    )?;
    let server_host = params
        .get(b"SERVER_NAME")
        .filter(|h| !h.is_empty())
        .or_else(|| params.get(b"SERVER_ADDR"));
    scope.set_item(
        intern!(py, "server"),
        address(py, server_host, params.get(b"SERVER_PORT"))?,
    )?;
    if let Some(state) = state {
        scope.set_item(intern!(py, "state"), state.copy()?)?;
    }
    scope.set_item(intern!(py, "extensions"), defaults.extensions.bind(py).copy()?)?;
    Ok(scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn path_is_root_path_plus_path_info() {
        let p = params(&[("SCRIPT_NAME", "/api"), ("PATH_INFO", "/items/é")]);
        let (root, path) = paths(&p, &PathRules::default());
        assert_eq!((text(&root), text(&path)), ("/api".into(), "/api/items/é".into()));
        let (root, path) = paths(&params(&[]), &PathRules::default());
        assert_eq!((text(&root), text(&path)), (String::new(), "/".into()));
    }

    #[test]
    fn iis_paths_follow_the_wsgi_rules() {
        let rules = PathRules {
            script_name: Some("/shop".into()),
            ..PathRules::default()
        };
        let p = params(&[
            ("SERVER_SOFTWARE", "Microsoft-IIS/10.0"),
            ("PATH_INFO", "/shop/cart"),
            ("SCRIPT_NAME", "/shop/cart"),
        ]);
        let (root, path) = paths(&p, &rules);
        assert_eq!((text(&root), text(&path)), ("/shop".into(), "/shop/cart".into()));
        // Without the setting IIS's SCRIPT_NAME is cleared, as wfastcgi does.
        let (root, path) = paths(&p, &PathRules::default());
        assert_eq!((text(&root), text(&path)), (String::new(), "/shop/cart".into()));
    }

    #[test]
    fn raw_path_is_request_uri_without_query() {
        let p = params(&[("REQUEST_URI", "/caf%C3%A9/x?q=1")]);
        assert_eq!(raw_path(&p), Some(&b"/caf%C3%A9/x"[..]));
        assert_eq!(raw_path(&params(&[])), None);
    }

    #[test]
    fn http_versions() {
        assert_eq!(http_version(&params(&[("SERVER_PROTOCOL", "HTTP/1.0")])), "1.0");
        assert_eq!(http_version(&params(&[("SERVER_PROTOCOL", "HTTP/2.0")])), "2");
        assert_eq!(http_version(&params(&[])), "1.1");
    }

    #[test]
    fn headers_keep_order_and_lower_case() {
        let p = params(&[
            ("CONTENT_TYPE", "text/plain"),
            ("CONTENT_LENGTH", ""),
            ("HTTP_HOST", "example.org"),
            ("HTTP_X_CUSTOM_THING", "1"),
            ("HTTP_CONTENT_TYPE", "text/plain"),
            ("REMOTE_ADDR", "127.0.0.1"),
            ("HTTP_ACCEPT", "*/*"),
            ("HTTP_", "nameless"),
        ]);
        let got: Vec<(String, String)> = headers(&p).into_iter().map(|(n, v)| (text(&n), text(v))).collect();
        let want: Vec<(String, String)> = [
            ("content-type", "text/plain"),
            ("host", "example.org"),
            ("x-custom-thing", "1"),
            ("accept", "*/*"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
    }
}
