//! pyfcgi: a FastCGI responder that runs Python WSGI applications, for IIS and any FastCGI web server.
//!
//! The crate is split by concern: [`protocol`] is the FastCGI wire format and state machine (sans-IO),
//! [`transport`] is where connections come from (inherited listening socket, `--bind`, the IIS pipe),
//! [`server`] drives connections and runs requests through a [`server::Handler`], and the WSGI bridge
//! (`config`, `python`, `wsgi`) and the ASGI bridge (`asgi`) are the handlers, chosen per application by
//! [`dispatch`].

pub mod asgi;
pub mod cli;
pub mod config;
pub mod dispatch;
pub mod iis;
pub mod launch;
pub mod logging;
pub mod protocol;
pub mod python;
pub mod server;
pub mod transport;
pub mod wsgi;
