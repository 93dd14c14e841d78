//! The benchmark ceiling: pyfcgi's own server (same transports, worker pool and protocol code) with a handler
//! that answers every request with a constant body and no Python. Whatever a WSGI bridge adds on top of this is
//! the bridge's cost; nothing behind nginx can be faster than this on the same machine.
//!
//! `ceiling --bind ADDR [--body-bytes N]` answers `Hello, World!\n` (or N bytes) to every request; request bodies
//! are drained by the server, so it also serves as the ceiling for uploads.

use std::sync::Arc;

use clap::Parser;
use pyfcgi::launch::{serve, ServeOptions};
use pyfcgi::protocol::RequestHead;
use pyfcgi::server::{Exchange, Handler, Shutdown};

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    serve: ServeOptions,
    /// Answer with this many bytes instead of the hello-world body.
    #[arg(long)]
    body_bytes: Option<usize>,
    /// The benchmark app this run stands in for: `stream:...` answers 1 MiB, the stream app's size, so the
    /// ceiling bounds that cell too; any other app gets the hello-world body.
    #[arg(long)]
    app: Option<String>,
}

struct Constant {
    head: Vec<u8>,
    body: Vec<u8>,
}

impl Handler for Constant {
    fn handle(&self, _request: RequestHead, mut exchange: Exchange) -> (Exchange, u32) {
        exchange.set_head(self.head.clone());
        // A failed write means the web server went away; the server closes the connection.
        let _ = exchange.write(&self.body);
        (exchange, 0)
    }
}

fn main() -> anyhow::Result<()> {
    pyfcgi::logging::init("warn");
    let args = Args::parse();
    let streamed = args.app.as_deref().is_some_and(|app| app.starts_with("stream"));
    let body_bytes = args.body_bytes.or(streamed.then_some(1024 * 1024));
    let body = body_bytes.map_or_else(|| b"Hello, World!\n".to_vec(), |n| vec![b'x'; n]);
    let head = format!(
        "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    serve(&args.serve, Arc::new(Constant { head, body }), Shutdown::new())?;
    Ok(())
}
