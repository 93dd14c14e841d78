//! The FastCGI wire protocol, sans-IO: record encoding and decoding ([`record`]), name-value pairs ([`nv`]), the
//! per-connection state machine that turns bytes into request events ([`parser`]) and the response encoder
//! ([`response`]). This module owns what is on the wire and which protocol rules hold; it performs no I/O, knows
//! nothing of sockets, threads or Python, and never panics on input.

pub mod nv;
pub mod parser;
pub mod record;
pub mod response;

pub use nv::Params;
pub use parser::{Event, Limits, ManagementValues, Parsed, Parser, RequestHead};
pub use response::ResponseEncoder;

/// A violation of the FastCGI protocol by the peer. The connection it happened on must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("unsupported FastCGI version {0} (expected 1; the peer may not speak FastCGI)")]
    UnsupportedVersion(u8),
    #[error("record of type {record_type} has a body of {length} bytes, which that type does not allow")]
    BadRecordLength { record_type: u8, length: usize },
    #[error("unexpected record of type {record_type} for request {request_id}")]
    UnexpectedRecord { record_type: u8, request_id: u16 },
    #[error("BEGIN_REQUEST for request {0}, which is already active")]
    DuplicateRequestId(u16),
    #[error("request parameters exceed the limit of {limit} bytes")]
    ParamsTooLarge { limit: usize },
    #[error("parameter name of {len} bytes exceeds the limit of {limit} bytes")]
    NameTooLong { len: usize, limit: usize },
    #[error("malformed name-value pair: {0}")]
    MalformedNameValue(&'static str),
    #[error("connection closed in the middle of a record")]
    Truncated,
}
