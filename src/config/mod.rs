//! Every setting pyfcgi reads, the value it resolved to, and where that value came from.
//!
//! So far this holds the web.config reader ([`webconfig`]), wfastcgi's `PYTHONPATH` processing
//! ([`pythonpath`]) and the `WSGI_HANDLER` parser ([`handler`]); the settings model is built on them.

pub mod handler;
pub mod pythonpath;
pub mod webconfig;

pub use handler::{HandlerForm, HandlerSpec, HandlerSpecError, ImportAttempt, Segment};
pub use pythonpath::PathListStyle;
pub use webconfig::{find_web_config, AppSettings, WebConfigError};
