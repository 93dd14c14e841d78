//! Every setting pyfcgi reads, the value it resolved to, and where that value came from.
//!
//! So far this holds the web.config reader ([`webconfig`]) and wfastcgi's `PYTHONPATH` processing
//! ([`pythonpath`]); the settings model is built on them.

pub mod pythonpath;
pub mod webconfig;

pub use pythonpath::PathListStyle;
pub use webconfig::{find_web_config, AppSettings, WebConfigError};
