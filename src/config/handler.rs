//! The shape of a `WSGI_HANDLER` value, parsed without Python.
//!
//! This module owns splitting the string into the import attempts wfastcgi's `get_wsgi_handler` makes
//! (wfastcgi.md §2), and the `module:attr` form pyfcgi adds. It does not import anything: the Python
//! layer walks [`HandlerSpec::attempts`] in order, retrying the next one only on `ImportError`, and
//! produces wfastcgi's error texts.

use std::fmt;

/// wfastcgi's exact text for an empty or missing handler; users search for it.
pub const MISSING_HANDLER_MESSAGE: &str = "WSGI_HANDLER env var must be set";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerSpecError {
    #[error("{MISSING_HANDLER_MESSAGE}")]
    Missing,
    #[error("WSGI_HANDLER \"{raw}\" is not valid: {reason}")]
    Malformed { raw: String, reason: &'static str },
}

/// One name to fetch with `getattr`, called with no arguments afterwards when written `name()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub name: String,
    pub call: bool,
}

impl Segment {
    /// wfastcgi strips one trailing `()` only, so `f()()` looks up the attribute `f()` and fails there,
    /// as it does under wfastcgi.
    fn parse(text: &str) -> Self {
        match text.strip_suffix("()") {
            Some(name) => Segment {
                name: name.to_string(),
                call: true,
            },
            None => Segment {
                name: text.to_string(),
                call: false,
            },
        }
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if self.call {
            f.write_str("()")?;
        }
        Ok(())
    }
}

/// One `__import__(module, fromlist=[names[0].name])` followed by the `getattr` walk over `names`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportAttempt {
    /// Passed to `__import__` verbatim, including any `()` text, because wfastcgi does the same and
    /// lets the resulting `ImportError` move that segment to the attribute side.
    pub module: String,
    pub names: Vec<Segment>,
}

/// Which syntax the value was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandlerForm {
    /// wfastcgi's `pkg.mod.attr` with `()` markers; the module/attribute boundary is found by retrying.
    Dotted,
    /// `module:attr.chain`, as gunicorn and uvicorn write it; the boundary is explicit, so one attempt.
    Colon,
}

/// A parsed `WSGI_HANDLER`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerSpec {
    /// The value as configured; error messages quote it.
    pub raw: String,
    pub form: HandlerForm,
    attempts: Vec<ImportAttempt>,
}

impl HandlerSpec {
    /// Parses a handler value. Only an empty value is an error for the dotted form: everything else
    /// wfastcgi would try to import, and its failure text comes from Python. A bare module name parses
    /// with no attempts, so the resolver reports `"myapp" could not be imported`, as wfastcgi does.
    pub fn parse(raw: &str) -> Result<Self, HandlerSpecError> {
        if raw.is_empty() {
            return Err(HandlerSpecError::Missing);
        }
        // A colon can never appear in a dotted name that wfastcgi could import, so its presence
        // unambiguously selects the explicit form.
        match raw.split_once(':') {
            Some((module, attrs)) => Self::parse_colon(raw, module, attrs),
            None => Ok(Self::parse_dotted(raw)),
        }
    }

    fn parse_dotted(raw: &str) -> Self {
        let parts: Vec<&str> = raw.split('.').collect();
        let attempts = (1..parts.len())
            .rev()
            .map(|split| ImportAttempt {
                module: parts[..split].join("."),
                names: parts[split..].iter().map(|p| Segment::parse(p)).collect(),
            })
            .collect();
        HandlerSpec {
            raw: raw.to_string(),
            form: HandlerForm::Dotted,
            attempts,
        }
    }

    fn parse_colon(raw: &str, module: &str, attrs: &str) -> Result<Self, HandlerSpecError> {
        let malformed = |reason| HandlerSpecError::Malformed {
            raw: raw.to_string(),
            reason,
        };
        if module.is_empty() {
            return Err(malformed("nothing before ':'"));
        }
        if module.contains(['(', ')']) {
            return Err(malformed("the module part before ':' cannot be called"));
        }
        if attrs.is_empty() {
            return Err(malformed("nothing after ':'"));
        }
        if attrs.contains(':') {
            return Err(malformed("more than one ':'"));
        }
        let mut names = Vec::new();
        for part in attrs.split('.') {
            let segment = Segment::parse(part);
            if segment.name.is_empty() {
                return Err(malformed("an empty name in the attribute chain"));
            }
            if segment.name.contains(['(', ')']) {
                return Err(malformed("only a bare '()' call without arguments is supported"));
            }
            names.push(segment);
        }
        Ok(HandlerSpec {
            raw: raw.to_string(),
            form: HandlerForm::Colon,
            attempts: vec![ImportAttempt {
                module: module.to_string(),
                names,
            }],
        })
    }

    /// The imports to try, longest module first; the next one is tried only after an `ImportError`.
    /// Empty for a bare name, which is never imported as a module.
    pub fn attempts(&self) -> &[ImportAttempt] {
        &self.attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(name: &str, call: bool) -> Segment {
        Segment {
            name: name.to_string(),
            call,
        }
    }

    fn attempt(module: &str, names: &[(&str, bool)]) -> ImportAttempt {
        ImportAttempt {
            module: module.to_string(),
            names: names.iter().map(|&(n, c)| seg(n, c)).collect(),
        }
    }

    fn parsed(raw: &str) -> HandlerSpec {
        HandlerSpec::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    #[test]
    fn flask_style_module_attr() {
        let spec = parsed("app.app");
        assert_eq!(spec.form, HandlerForm::Dotted);
        assert_eq!(spec.attempts(), [attempt("app", &[("app", false)])]);
    }

    #[test]
    fn django_factory_call() {
        let spec = parsed("django.core.wsgi.get_wsgi_application()");
        assert_eq!(
            spec.attempts(),
            [
                attempt("django.core.wsgi", &[("get_wsgi_application", true)]),
                attempt("django.core", &[("wsgi", false), ("get_wsgi_application", true)]),
                attempt(
                    "django",
                    &[("core", false), ("wsgi", false), ("get_wsgi_application", true)]
                ),
            ]
        );
    }

    #[test]
    fn attribute_chain_falls_back_segment_by_segment() {
        let spec = parsed("pkg.mod.attr.attr2");
        let modules: Vec<&str> = spec.attempts().iter().map(|a| a.module.as_str()).collect();
        assert_eq!(modules, ["pkg.mod.attr", "pkg.mod", "pkg"]);
        assert_eq!(
            spec.attempts()[1],
            attempt("pkg.mod", &[("attr", false), ("attr2", false)])
        );
    }

    #[test]
    fn call_marker_in_module_part_is_imported_verbatim() {
        let spec = parsed("pkg.factory().app");
        assert_eq!(
            spec.attempts(),
            [
                attempt("pkg.factory()", &[("app", false)]),
                attempt("pkg", &[("factory", true), ("app", false)]),
            ]
        );
    }

    #[test]
    fn bare_module_parses_with_no_attempts() {
        let spec = parsed("myapp");
        assert_eq!(spec.form, HandlerForm::Dotted);
        assert!(spec.attempts().is_empty());
        assert_eq!(spec.raw, "myapp");
    }

    #[test]
    fn colon_form_is_one_explicit_attempt() {
        assert_eq!(parsed("mod:app").attempts(), [attempt("mod", &[("app", false)])]);
        let spec = parsed("pkg.mod:create_app().wsgi_app");
        assert_eq!(spec.form, HandlerForm::Colon);
        assert_eq!(
            spec.attempts(),
            [attempt("pkg.mod", &[("create_app", true), ("wsgi_app", false)])]
        );
        assert_eq!(
            parsed("mod:create_app()").attempts(),
            [attempt("mod", &[("create_app", true)])]
        );
    }

    #[test]
    fn empty_is_wfastcgis_missing_error() {
        let err = HandlerSpec::parse("").expect_err("empty rejected");
        assert_eq!(err, HandlerSpecError::Missing);
        assert_eq!(err.to_string(), "WSGI_HANDLER env var must be set");
    }

    #[test]
    fn malformed_colon_forms_are_rejected_with_the_value() {
        for raw in [":app", "mod:", "a:b:c", "mod:f(1)", "mod:a..b", "f():app"] {
            let err = HandlerSpec::parse(raw).expect_err(raw);
            assert!(err.to_string().contains(raw), "{err}");
        }
    }

    #[test]
    fn segment_display_round_trips() {
        assert_eq!(seg("get_wsgi_application", true).to_string(), "get_wsgi_application()");
        assert_eq!(Segment::parse("f()()"), seg("f()", true));
    }
}
