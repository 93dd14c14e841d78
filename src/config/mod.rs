//! Every setting pyfcgi reads, the value it resolved to, and where that value came from.
//!
//! So far this holds the web.config reader ([`webconfig`]); the settings model is built on it.

pub mod webconfig;

pub use webconfig::{find_web_config, AppSettings, WebConfigError};
