//! Building the PEP 3333 `environ` dict from a request's FastCGI params: native strings decoded as latin-1, keys
//! cached per worker thread (the same few dozen names arrive on every request), `wsgi.*` keys, the URL scheme
//! from `HTTPS`/`REQUEST_SCHEME` only (never from client headers), and, for requests from IIS, wfastcgi's
//! PATH_INFO/SCRIPT_NAME rules and its extra raw-bytes keys. The path rules are plain functions over bytes so
//! they are tested without Python.

use std::cell::RefCell;
use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyString, PyTuple};
use pyo3::{ffi, intern};

use crate::protocol::Params;

/// How paths are presented to the application.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathRules {
    /// wfastcgi's `SCRIPT_NAME` setting: a mount prefix split off PATH_INFO (IIS only).
    pub script_name: Option<String>,
    /// wfastcgi's `AllowPathInfoForScriptMappings`: keep IIS's SCRIPT_NAME instead of clearing it.
    pub allow_path_info_for_script_mappings: bool,
    /// Opt-in: the mount prefix from `APPL_MD_PATH` when no SCRIPT_NAME setting is given (IIS only).
    pub script_name_from_appl_md_path: bool,
    /// Opt-in: PATH_INFO rebuilt from `REQUEST_URI`, percent-decoded to exact bytes (IIS only).
    pub path_info_from_request_uri: bool,
}

/// Whether a request came through IIS (whose params follow IIS's conventions, not CGI's).
pub fn is_iis(params: &Params) -> bool {
    params
        .get(b"SERVER_SOFTWARE")
        .is_some_and(|s| s.starts_with(b"Microsoft-IIS"))
        || params.get(b"APPL_MD_PATH").is_some()
}

/// PATH_INFO and SCRIPT_NAME for a request from IIS, following wfastcgi 3.0.0 (wfastcgi.md §3) plus the opt-in
/// improvements.
pub fn iis_paths(params: &Params, rules: &PathRules) -> (Vec<u8>, Vec<u8>) {
    let mut path_info: Vec<u8> = if rules.path_info_from_request_uri {
        let uri = params.get(b"REQUEST_URI").unwrap_or_default();
        let path = uri.split(|b| *b == b'?').next().unwrap_or_default();
        percent_decode(path)
    } else {
        params
            .get(b"HTTP_X_ORIGINAL_URL")
            .or_else(|| params.get(b"PATH_INFO"))
            .unwrap_or_default()
            .to_vec()
    };
    if !rules.path_info_from_request_uri {
        // IIS has already decoded PATH_INFO, so this also cuts at an encoded %3F: wfastcgi's behaviour, kept.
        if let Some(q) = path_info.iter().position(|b| *b == b'?') {
            path_info.truncate(q);
        }
    }
    let mut script_name = if rules.allow_path_info_for_script_mappings {
        params.get(b"SCRIPT_NAME").unwrap_or_default().to_vec()
    } else {
        Vec::new()
    };

    if let Some(prefix) = rules.script_name.as_deref().filter(|p| !p.is_empty()) {
        // wfastcgi compares case-insensitively and does not check segment boundaries; kept for compatibility.
        let prefix = prefix.as_bytes();
        if path_info.len() >= prefix.len() && path_info[..prefix.len()].eq_ignore_ascii_case(prefix) {
            script_name = prefix.to_vec();
            path_info.drain(..prefix.len());
        }
    } else if rules.script_name_from_appl_md_path {
        if let Some(mount) = params.get(b"APPL_MD_PATH").and_then(mount_from_appl_md_path) {
            let boundary = path_info.get(mount.len()).is_none_or(|b| *b == b'/');
            if boundary && path_info.len() >= mount.len() && path_info[..mount.len()].eq_ignore_ascii_case(&mount) {
                script_name = path_info.drain(..mount.len()).collect();
            }
        }
    }
    (path_info, script_name)
}

/// `/LM/W3SVC/1/ROOT/shop/api` → `/shop/api`; the site root (`.../ROOT`) has no mount prefix.
fn mount_from_appl_md_path(md_path: &[u8]) -> Option<Vec<u8>> {
    let upper = md_path.to_ascii_uppercase();
    let at = upper.windows(5).position(|w| w == b"/ROOT")?;
    let rest = &md_path[at + 5..];
    (!rest.is_empty() && rest[0] == b'/')
        .then(|| rest.trim_ascii_end().to_vec())
        .filter(|m| m.len() > 1)
}

/// Decodes `%XX` escapes to bytes; malformed escapes are kept as they are.
pub fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' && i + 2 < input.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(input[i + 1]), hex(input[i + 2])) {
                // Two hex digits make at most 255.
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

/// The URL scheme: `HTTPS=on` (any case) or `REQUEST_SCHEME=https` mean https. Headers such as
/// X-Forwarded-Proto are client-controlled and never used.
pub fn url_scheme(params: &Params) -> &'static str {
    let https = params
        .get(b"HTTPS")
        .is_some_and(|v| v.eq_ignore_ascii_case(b"on") || v == b"1");
    let scheme = params
        .get(b"REQUEST_SCHEME")
        .is_some_and(|v| v.eq_ignore_ascii_case(b"https"));
    if https || scheme {
        "https"
    } else {
        "http"
    }
}

/// Most distinct parameter names cached per thread; names beyond that are made per request (clients choose
/// header names, so the cache must not grow without bound).
const KEY_CACHE_LIMIT: usize = 512;

/// Keys made from parameter names, per worker thread. A web server sends the same names in the same order on
/// every request, so the first lookup is by position (one comparison), and only a miss hashes the name.
#[derive(Default)]
struct KeyCache {
    by_position: Vec<Option<CachedKey>>,
    by_name: HashMap<Box<[u8]>, Py<PyString>>,
}

/// A parameter name and the Python key made from it.
type CachedKey = (Box<[u8]>, Py<PyString>);

thread_local! {
    static KEY_CACHE: RefCell<KeyCache> = RefCell::new(KeyCache::default());
}

/// A str from latin-1 bytes, as PEP 3333 requires for native strings.
pub fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    // SAFETY: PyUnicode_DecodeLatin1 reads exactly `len` bytes and cannot fail for any input except on memory
    // exhaustion, where it returns NULL and from_owned_ptr_or_err reports the MemoryError.
    unsafe {
        let ptr = ffi::PyUnicode_DecodeLatin1(bytes.as_ptr().cast(), bytes.len() as ffi::Py_ssize_t, std::ptr::null());
        match Bound::from_owned_ptr_or_err(py, ptr) {
            Ok(obj) => obj.cast_into_unchecked(),
            Err(_) => PyString::new(py, &String::from_utf8_lossy(bytes)),
        }
    }
}

fn key<'py>(py: Python<'py>, cache: &mut KeyCache, position: usize, name: &[u8]) -> Bound<'py, PyString> {
    if let Some(Some((cached, key))) = cache.by_position.get(position) {
        if **cached == *name {
            return key.bind(py).clone();
        }
    }
    let key = match cache.by_name.get(name) {
        Some(key) => key.bind(py).clone(),
        None => {
            // Interned keys make the app's own lookups (environ['PATH_INFO']) hit the fast pointer comparison.
            let key = match std::str::from_utf8(name) {
                Ok(text) if text.is_ascii() => PyString::intern(py, text),
                _ => latin1(py, name),
            };
            if cache.by_name.len() >= KEY_CACHE_LIMIT {
                return key;
            }
            cache.by_name.insert(name.into(), key.clone().unbind());
            key
        }
    };
    if position < KEY_CACHE_LIMIT {
        if cache.by_position.len() <= position {
            cache.by_position.resize_with(position + 1, || None);
        }
        cache.by_position[position] = Some((name.into(), key.clone().unbind()));
    }
    key
}

static WSGI_VERSION: PyOnceLock<Py<PyTuple>> = PyOnceLock::new();

/// Per-server facts that appear in every environ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironDefaults {
    pub multithread: bool,
    pub multiprocess: bool,
    pub rules: PathRules,
}

/// Templates kept per worker thread. Front servers send a handful of distinct parameter-name sets (one per
/// location block or client type), so a few cover real traffic; the least recently used is replaced.
const TEMPLATES_PER_THREAD: usize = 4;

/// Names whose values decide the keys derived from the params (`wsgi.url_scheme`, IIS detection and paths).
const SCHEME_NAMES: [&[u8]; 2] = [b"HTTPS", b"REQUEST_SCHEME"];
const IIS_PATH_NAMES: [&[u8]; 6] = [
    b"PATH_INFO",
    b"SCRIPT_NAME",
    b"HTTP_X_ORIGINAL_URL",
    b"REQUEST_URI",
    b"QUERY_STRING",
    b"APPL_MD_PATH",
];

/// Keys the server sets after the params, which a parameter of the same name (from the front server's
/// configuration) must not override.
fn set_by_server(name: &[u8], iis: bool) -> bool {
    const ALWAYS: [&[u8]; 9] = [
        b"wsgi.version",
        b"wsgi.url_scheme",
        b"wsgi.input",
        b"wsgi.errors",
        b"wsgi.multithread",
        b"wsgi.multiprocess",
        b"wsgi.run_once",
        b"wsgi.input_terminated",
        b"wsgi.file_wrapper",
    ];
    const IIS: [&[u8]; 4] = [
        b"wsgi.path_info",
        b"wsgi.script_name",
        b"wsgi.query_string",
        b"wfastcgi.http_x_original_url",
    ];
    ALWAYS.contains(&name) || (iis && IIS.contains(&name))
}

/// For each parameter, whether a later one has the same name (the environ keeps the last, as CGI servers do).
fn shadowed_positions(params: &Params) -> Vec<bool> {
    // Header names are the client's choice: past a typical request's size, a set keeps thousands of distinct
    // headers from costing a quadratic number of comparisons; below it, comparing is cheaper than hashing.
    const LINEAR_LIMIT: usize = 64;
    let names: Vec<&[u8]> = params.iter().map(|(name, _)| name).collect();
    if names.len() <= LINEAR_LIMIT {
        return (0..names.len()).map(|i| names[i + 1..].contains(&names[i])).collect();
    }
    let mut seen = std::collections::HashSet::with_capacity(names.len());
    let mut shadowed: Vec<bool> = names.iter().rev().map(|name| !seen.insert(*name)).collect();
    shadowed.reverse();
    shadowed
}

/// One parameter of the request a template was made from.
struct TemplateEntry {
    name: Box<[u8]>,
    /// The value's bytes as last decoded into the template.
    value: Vec<u8>,
    key: Py<PyString>,
    /// Not in the environ itself: a duplicate shadowed by a later pair of the same name, or a body header that
    /// PEP 3333 keeps only without the HTTP_ prefix.
    ignored: bool,
    /// A change of value means the derived keys must be computed again.
    derives: bool,
}

/// A finished environ (minus the request's own objects) for one sequence of parameter names, ready to copy.
/// A web server sends the same names on every request through one location, and most values repeat too
/// (server name, protocol, address, most headers): `PyDict_Copy` of a template clones the hash table in one
/// pass, so a request pays only for the values that changed instead of ~30 dict inserts with resizes, and the
/// unchanged value strings are shared rather than decoded and freed again.
struct Template {
    entries: Vec<TemplateEntry>,
    iis: bool,
    defaults: EnvironDefaults,
    dict: Py<PyDict>,
}

thread_local! {
    static TEMPLATES: RefCell<Vec<Template>> = const { RefCell::new(Vec::new()) };
}

impl Template {
    fn new(py: Python<'_>, params: &Params, defaults: &EnvironDefaults) -> PyResult<Self> {
        let iis = is_iis(params);
        let dict = PyDict::new(py);
        let shadowed = shadowed_positions(params);
        let mut entries = Vec::with_capacity(params.len());
        KEY_CACHE.with_borrow_mut(|cache| {
            for (position, (name, value)) in params.iter().enumerate() {
                // Some servers send the body headers twice; PEP 3333 has them only without the HTTP_ prefix.
                let body_header = name == b"HTTP_CONTENT_TYPE" || name == b"HTTP_CONTENT_LENGTH";
                let ignored = body_header || shadowed[position] || set_by_server(name, iis);
                let key = key(py, cache, position, name);
                if !ignored {
                    dict.set_item(&key, latin1(py, value))?;
                }
                let derives = SCHEME_NAMES.contains(&name)
                    || name == b"SERVER_SOFTWARE"
                    || (iis && IIS_PATH_NAMES.contains(&name));
                entries.push(TemplateEntry {
                    name: name.into(),
                    value: value.to_vec(),
                    key: key.unbind(),
                    ignored,
                    derives,
                });
            }
            PyResult::Ok(())
        })?;
        if !iis {
            // CGI requires both keys; some servers leave them out for the root.
            for name in ["SCRIPT_NAME", "PATH_INFO", "QUERY_STRING"] {
                if params.get(name.as_bytes()).is_none() {
                    dict.set_item(name, intern!(py, ""))?;
                }
            }
        }
        if params.get(b"REQUEST_METHOD").is_none() {
            dict.set_item(intern!(py, "REQUEST_METHOD"), intern!(py, "GET"))?;
        }
        derive(py, &dict, params, defaults, iis)?;
        let version = WSGI_VERSION.get_or_init(py, || {
            PyTuple::new(py, [1, 0])
                .map(Bound::unbind)
                .unwrap_or_else(|_| PyTuple::empty(py).unbind())
        });
        dict.set_item(intern!(py, "wsgi.version"), version.bind(py))?;
        // Placeholders, so that setting the request's own objects replaces a value instead of growing the table.
        dict.set_item(intern!(py, "wsgi.input"), py.None())?;
        dict.set_item(intern!(py, "wsgi.errors"), py.None())?;
        dict.set_item(intern!(py, "wsgi.multithread"), defaults.multithread)?;
        dict.set_item(intern!(py, "wsgi.multiprocess"), defaults.multiprocess)?;
        dict.set_item(intern!(py, "wsgi.run_once"), false)?;
        dict.set_item(intern!(py, "wsgi.input_terminated"), true)?;
        dict.set_item(intern!(py, "wsgi.file_wrapper"), py.None())?;
        Ok(Self {
            entries,
            iis,
            defaults: defaults.clone(),
            dict: dict.unbind(),
        })
    }

    /// Whether this template was made from the same parameter names, in the same order, and settings.
    fn fits(&self, params: &Params, defaults: &EnvironDefaults) -> bool {
        self.entries.len() == params.len()
            && self
                .entries
                .iter()
                .zip(params.iter())
                .all(|(entry, (name, _))| *entry.name == *name)
            && self.defaults == *defaults
    }

    /// The environ for `params`: a copy of the template with the values that differ replaced. The template
    /// takes the new values too, so a value that changes once is decoded once. `None` when the request is
    /// not of the template's kind after all (IIS detection changed with SERVER_SOFTWARE's value).
    fn instantiate<'py>(&mut self, py: Python<'py>, params: &Params) -> PyResult<Option<Bound<'py, PyDict>>> {
        let template = self.dict.bind(py);
        let environ = template.copy()?;
        let mut derived_changed = false;
        for (entry, (_, value)) in self.entries.iter_mut().zip(params.iter()) {
            if entry.ignored || *entry.value == *value {
                continue;
            }
            if entry.derives && is_iis(params) != self.iis {
                return Ok(None);
            }
            let text = latin1(py, value);
            let key = entry.key.bind(py);
            environ.set_item(key, &text)?;
            template.set_item(key, &text)?;
            entry.value.clear();
            entry.value.extend_from_slice(value);
            derived_changed |= entry.derives;
        }
        if derived_changed {
            derive(py, &environ, params, &self.defaults, self.iis)?;
            derive(py, template, params, &self.defaults, self.iis)?;
        }
        Ok(Some(environ))
    }
}

/// The keys computed from parameter values rather than copied: `wsgi.url_scheme` and, for IIS, wfastcgi's
/// PATH_INFO/SCRIPT_NAME and raw-bytes keys.
fn derive(
    py: Python<'_>,
    environ: &Bound<'_, PyDict>,
    params: &Params,
    defaults: &EnvironDefaults,
    iis: bool,
) -> PyResult<()> {
    if iis {
        let (path_info, script_name) = iis_paths(params, &defaults.rules);
        environ.set_item(intern!(py, "PATH_INFO"), latin1(py, &path_info))?;
        environ.set_item(intern!(py, "SCRIPT_NAME"), latin1(py, &script_name))?;
        environ.set_item(intern!(py, "wsgi.path_info"), PyBytes::new(py, &path_info))?;
        environ.set_item(intern!(py, "wsgi.script_name"), PyBytes::new(py, &script_name))?;
        let query = params.get(b"QUERY_STRING").unwrap_or_default();
        environ.set_item(intern!(py, "wsgi.query_string"), PyBytes::new(py, query))?;
        if let Some(original) = params.get(b"HTTP_X_ORIGINAL_URL") {
            environ.set_item(intern!(py, "wfastcgi.http_x_original_url"), PyBytes::new(py, original))?;
        }
    }
    environ.set_item(intern!(py, "wsgi.url_scheme"), PyString::intern(py, url_scheme(params)))
}

/// Builds the environ. `input`, `errors` and `file_wrapper` are the request's objects.
///
/// # Errors
/// Only on Python memory errors.
pub fn build<'py>(
    py: Python<'py>,
    params: &Params,
    defaults: &EnvironDefaults,
    input: &Bound<'py, PyAny>,
    errors: &Bound<'py, PyAny>,
    file_wrapper: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let environ = TEMPLATES.with_borrow_mut(|templates| {
        if let Some(at) = templates.iter().position(|t| t.fits(params, defaults)) {
            // Most recently used first, so the common case is found by the first comparison.
            templates[..=at].rotate_right(1);
            if let Some(environ) = templates[0].instantiate(py, params)? {
                return Ok(environ);
            }
            templates.remove(0);
        }
        let template = Template::new(py, params, defaults)?;
        let environ = template.dict.bind(py).copy()?;
        templates.truncate(TEMPLATES_PER_THREAD - 1);
        templates.insert(0, template);
        PyResult::Ok(environ)
    })?;
    environ.set_item(intern!(py, "wsgi.input"), input)?;
    environ.set_item(intern!(py, "wsgi.errors"), errors)?;
    environ.set_item(intern!(py, "wsgi.file_wrapper"), file_wrapper)?;
    Ok(environ)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
    }

    fn paths(p: &[(&str, &str)], rules: &PathRules) -> (String, String) {
        let (pi, sn) = iis_paths(&params(p), rules);
        (String::from_utf8(pi).unwrap(), String::from_utf8(sn).unwrap())
    }

    #[test]
    fn only_earlier_repeats_of_a_name_are_shadowed() {
        let few = params(&[("A", "1"), ("B", "2"), ("A", "3"), ("C", "4"), ("A", "5")]);
        assert_eq!(shadowed_positions(&few), [true, false, true, false, false]);
        // Past the linear limit the set-based path must agree.
        let names: Vec<String> = (0..200).map(|i| format!("H{}", i % 150)).collect();
        let many = params(&names.iter().map(|n| (n.as_str(), "v")).collect::<Vec<_>>());
        let expected: Vec<bool> = (0..200).map(|i| i < 50).collect();
        assert_eq!(shadowed_positions(&many), expected);
    }

    #[test]
    fn detects_iis() {
        assert!(is_iis(&params(&[("SERVER_SOFTWARE", "Microsoft-IIS/10.0")])));
        assert!(is_iis(&params(&[("APPL_MD_PATH", "/LM/W3SVC/1/ROOT")])));
        assert!(!is_iis(&params(&[("SERVER_SOFTWARE", "nginx/1.22.1")])));
    }

    #[test]
    fn iis_clears_script_name_by_default() {
        let p = [("PATH_INFO", "/test/this"), ("SCRIPT_NAME", "/test/this")];
        assert_eq!(paths(&p, &PathRules::default()), ("/test/this".into(), "".into()));
        let keep = PathRules {
            allow_path_info_for_script_mappings: true,
            ..PathRules::default()
        };
        assert_eq!(paths(&p, &keep), ("/test/this".into(), "/test/this".into()));
    }

    #[test]
    fn iis_x_original_url_wins_and_query_is_cut() {
        let p = [
            ("PATH_INFO", "/handler.fcgi/x"),
            ("HTTP_X_ORIGINAL_URL", "/fob/oar/baz?a=b"),
        ];
        assert_eq!(paths(&p, &PathRules::default()), ("/fob/oar/baz".into(), "".into()));
    }

    #[test]
    fn iis_script_name_setting_is_a_case_insensitive_prefix() {
        let rules = PathRules {
            script_name: Some("/Test".into()),
            ..PathRules::default()
        };
        assert_eq!(
            paths(&[("PATH_INFO", "/test/this")], &rules),
            ("/this".into(), "/Test".into())
        );
        // wfastcgi does not check the segment boundary.
        assert_eq!(
            paths(&[("PATH_INFO", "/testing")], &rules),
            ("ing".into(), "/Test".into())
        );
        assert_eq!(paths(&[("PATH_INFO", "/other")], &rules), ("/other".into(), "".into()));
    }

    #[test]
    fn appl_md_path_mount_is_opt_in_and_respects_segments() {
        let rules = PathRules {
            script_name_from_appl_md_path: true,
            ..PathRules::default()
        };
        let p = [("APPL_MD_PATH", "/LM/W3SVC/1/ROOT/shop"), ("PATH_INFO", "/shop/cart")];
        assert_eq!(paths(&p, &rules), ("/cart".into(), "/shop".into()));
        let p = [("APPL_MD_PATH", "/LM/W3SVC/1/ROOT/shop"), ("PATH_INFO", "/shopping")];
        assert_eq!(paths(&p, &rules), ("/shopping".into(), "".into()));
        let p = [("APPL_MD_PATH", "/LM/W3SVC/1/ROOT"), ("PATH_INFO", "/x")];
        assert_eq!(paths(&p, &rules), ("/x".into(), "".into()));
        let p = [("APPL_MD_PATH", "/LM/W3SVC/1/ROOT/shop"), ("PATH_INFO", "/shop/cart")];
        assert_eq!(paths(&p, &PathRules::default()), ("/shop/cart".into(), "".into()));
    }

    #[test]
    fn request_uri_path_info_is_exact_bytes() {
        let rules = PathRules {
            path_info_from_request_uri: true,
            ..PathRules::default()
        };
        let p = [("PATH_INFO", "/caf?"), ("REQUEST_URI", "/caf%C3%A9/a%3Fb?x=1")];
        let (pi, _) = iis_paths(&params(&p), &rules);
        assert_eq!(
            pi,
            "/café/a?b".as_bytes(),
            "an encoded ? is part of the path, unlike in wfastcgi"
        );
    }

    #[test]
    fn percent_decoding_keeps_malformed_escapes() {
        assert_eq!(percent_decode(b"a%20b%zz%4"), b"a b%zz%4");
        assert_eq!(percent_decode(b"%E2%82%AC"), "€".as_bytes());
        assert_eq!(percent_decode(b"%"), b"%");
    }

    #[test]
    fn scheme_comes_from_https_or_request_scheme_only() {
        assert_eq!(url_scheme(&params(&[("HTTPS", "on")])), "https");
        assert_eq!(url_scheme(&params(&[("HTTPS", "ON")])), "https");
        assert_eq!(url_scheme(&params(&[("HTTPS", "off")])), "http");
        assert_eq!(url_scheme(&params(&[("REQUEST_SCHEME", "https")])), "https");
        assert_eq!(url_scheme(&params(&[("HTTP_X_FORWARDED_PROTO", "https")])), "http");
    }
}
