//! The FastCGI 1.0 record format (spec §3.3, §5, §8): the 8-byte header, record types, the fixed-size bodies of
//! BEGIN_REQUEST, END_REQUEST and UNKNOWN_TYPE, and the encoders that write whole records into a buffer. Nothing
//! here knows about connections or requests; `parser` and `encode` build on it.

use super::ProtocolError;

/// The only protocol version FastCGI defines.
pub const VERSION_1: u8 = 1;
/// Size of every record header.
pub const HEADER_LEN: usize = 8;
/// Largest content a single record can carry (the length field is 16 bits).
pub const MAX_CONTENT_LEN: usize = 0xFFFF;
/// Largest padding a single record can carry.
pub const MAX_PADDING_LEN: usize = 0xFF;
/// The largest record on the wire: header, content and padding.
pub const MAX_RECORD_LEN: usize = HEADER_LEN + MAX_CONTENT_LEN + MAX_PADDING_LEN;
/// The request id reserved for management records.
pub const MANAGEMENT_REQUEST_ID: u16 = 0;
/// BEGIN_REQUEST flag: keep the connection open after the request.
pub const FLAG_KEEP_CONN: u8 = 1;

/// Record types of FastCGI 1.0 (spec §8). Unknown values are kept so they can be answered with UNKNOWN_TYPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordType {
    BeginRequest,
    AbortRequest,
    EndRequest,
    Params,
    Stdin,
    Stdout,
    Stderr,
    Data,
    GetValues,
    GetValuesResult,
    UnknownType,
    Other(u8),
}

impl RecordType {
    pub fn from_u8(value: u8) -> Self {
        match value {
            1 => Self::BeginRequest,
            2 => Self::AbortRequest,
            3 => Self::EndRequest,
            4 => Self::Params,
            5 => Self::Stdin,
            6 => Self::Stdout,
            7 => Self::Stderr,
            8 => Self::Data,
            9 => Self::GetValues,
            10 => Self::GetValuesResult,
            11 => Self::UnknownType,
            other => Self::Other(other),
        }
    }

    pub fn as_u8(self) -> u8 {
        match self {
            Self::BeginRequest => 1,
            Self::AbortRequest => 2,
            Self::EndRequest => 3,
            Self::Params => 4,
            Self::Stdin => 5,
            Self::Stdout => 6,
            Self::Stderr => 7,
            Self::Data => 8,
            Self::GetValues => 9,
            Self::GetValuesResult => 10,
            Self::UnknownType => 11,
            Self::Other(other) => other,
        }
    }
}

/// Roles a web server can ask for in BEGIN_REQUEST (spec §6). pyfcgi only plays the responder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Responder,
    Authorizer,
    Filter,
    Other(u16),
}

impl Role {
    pub fn from_u16(value: u16) -> Self {
        match value {
            1 => Self::Responder,
            2 => Self::Authorizer,
            3 => Self::Filter,
            other => Self::Other(other),
        }
    }

    pub fn as_u16(self) -> u16 {
        match self {
            Self::Responder => 1,
            Self::Authorizer => 2,
            Self::Filter => 3,
            Self::Other(other) => other,
        }
    }
}

/// `protocolStatus` of END_REQUEST (spec §5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolStatus {
    RequestComplete,
    CantMpxConn,
    Overloaded,
    UnknownRole,
    Other(u8),
}

impl ProtocolStatus {
    pub fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::RequestComplete,
            1 => Self::CantMpxConn,
            2 => Self::Overloaded,
            3 => Self::UnknownRole,
            other => Self::Other(other),
        }
    }

    pub fn as_u8(self) -> u8 {
        match self {
            Self::RequestComplete => 0,
            Self::CantMpxConn => 1,
            Self::Overloaded => 2,
            Self::UnknownRole => 3,
            Self::Other(other) => other,
        }
    }
}

/// A decoded record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    pub record_type: RecordType,
    pub request_id: u16,
    pub content_length: u16,
    pub padding_length: u8,
}

impl Header {
    pub fn new(record_type: RecordType, request_id: u16, content_length: u16, padding_length: u8) -> Self {
        Self {
            version: VERSION_1,
            record_type,
            request_id,
            content_length,
            padding_length,
        }
    }

    /// Decodes a header, rejecting any version other than 1.
    ///
    /// # Errors
    /// [`ProtocolError::UnsupportedVersion`] when the first byte is not 1 (which is also what garbage looks like).
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Result<Self, ProtocolError> {
        if bytes[0] != VERSION_1 {
            return Err(ProtocolError::UnsupportedVersion(bytes[0]));
        }
        Ok(Self {
            version: bytes[0],
            record_type: RecordType::from_u8(bytes[1]),
            request_id: u16::from_be_bytes([bytes[2], bytes[3]]),
            content_length: u16::from_be_bytes([bytes[4], bytes[5]]),
            padding_length: bytes[6],
        })
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let id = self.request_id.to_be_bytes();
        let len = self.content_length.to_be_bytes();
        [
            self.version,
            self.record_type.as_u8(),
            id[0],
            id[1],
            len[0],
            len[1],
            self.padding_length,
            0,
        ]
    }

    /// Length of the content and padding that follow this header.
    pub fn body_len(&self) -> usize {
        usize::from(self.content_length) + usize::from(self.padding_length)
    }
}

/// The body of BEGIN_REQUEST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BeginRequestBody {
    pub role: Role,
    pub flags: u8,
}

impl BeginRequestBody {
    pub const LEN: usize = 8;

    /// # Errors
    /// [`ProtocolError::BadRecordLength`] unless the content is exactly 8 bytes.
    pub fn decode(content: &[u8]) -> Result<Self, ProtocolError> {
        if content.len() != Self::LEN {
            return Err(ProtocolError::BadRecordLength {
                record_type: 1,
                length: content.len(),
            });
        }
        Ok(Self {
            role: Role::from_u16(u16::from_be_bytes([content[0], content[1]])),
            flags: content[2],
        })
    }

    pub fn encode(&self) -> [u8; Self::LEN] {
        let role = self.role.as_u16().to_be_bytes();
        [role[0], role[1], self.flags, 0, 0, 0, 0, 0]
    }

    pub fn keep_conn(&self) -> bool {
        self.flags & FLAG_KEEP_CONN != 0
    }
}

/// The body of END_REQUEST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndRequestBody {
    pub app_status: u32,
    pub protocol_status: ProtocolStatus,
}

impl EndRequestBody {
    pub const LEN: usize = 8;

    /// # Errors
    /// [`ProtocolError::BadRecordLength`] unless the content is exactly 8 bytes.
    pub fn decode(content: &[u8]) -> Result<Self, ProtocolError> {
        if content.len() != Self::LEN {
            return Err(ProtocolError::BadRecordLength {
                record_type: 3,
                length: content.len(),
            });
        }
        Ok(Self {
            app_status: u32::from_be_bytes([content[0], content[1], content[2], content[3]]),
            protocol_status: ProtocolStatus::from_u8(content[4]),
        })
    }

    pub fn encode(&self) -> [u8; Self::LEN] {
        let s = self.app_status.to_be_bytes();
        [s[0], s[1], s[2], s[3], self.protocol_status.as_u8(), 0, 0, 0]
    }
}

/// Padding that brings `content_len` to a multiple of 8, as the spec recommends for aligned parsing.
pub fn padding_for(content_len: usize) -> u8 {
    // The result is in 0..8, so the cast cannot truncate.
    ((8 - content_len % 8) % 8) as u8
}

const ZERO_PADDING: [u8; 8] = [0; 8];

/// The padding bytes that follow a record with `content_len` bytes of content.
pub fn padding_bytes(content_len: usize) -> &'static [u8] {
    &ZERO_PADDING[..usize::from(padding_for(content_len))]
}

/// Appends one record whose content fits in a single record (at most 65535 bytes).
///
/// # Panics
/// If `content` is longer than [`MAX_CONTENT_LEN`]; callers split streams with [`write_stream`].
pub fn write_record(out: &mut Vec<u8>, record_type: RecordType, request_id: u16, content: &[u8]) {
    let content_length = u16::try_from(content.len()).expect("record content longer than 65535 bytes");
    let padding = padding_for(content.len());
    out.extend_from_slice(&Header::new(record_type, request_id, content_length, padding).encode());
    out.extend_from_slice(content);
    out.extend_from_slice(&ZERO_PADDING[..usize::from(padding)]);
}

/// Appends `data` as as many stream records (STDOUT, STDERR, ...) as it needs, never an empty one.
/// An empty record ends a stream, so it is written only by [`write_stream_end`].
pub fn write_stream(out: &mut Vec<u8>, record_type: RecordType, request_id: u16, data: &[u8]) {
    for chunk in data.chunks(MAX_CONTENT_LEN) {
        write_record(out, record_type, request_id, chunk);
    }
}

/// Appends the empty record that closes a stream.
pub fn write_stream_end(out: &mut Vec<u8>, record_type: RecordType, request_id: u16) {
    write_record(out, record_type, request_id, &[]);
}

/// Appends END_REQUEST.
pub fn write_end_request(out: &mut Vec<u8>, request_id: u16, app_status: u32, protocol_status: ProtocolStatus) {
    write_record(
        out,
        RecordType::EndRequest,
        request_id,
        &EndRequestBody {
            app_status,
            protocol_status,
        }
        .encode(),
    );
}

/// Appends UNKNOWN_TYPE answering a management record of type `unknown`.
pub fn write_unknown_type(out: &mut Vec<u8>, unknown: u8) {
    write_record(
        out,
        RecordType::UnknownType,
        MANAGEMENT_REQUEST_ID,
        &[unknown, 0, 0, 0, 0, 0, 0, 0],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_every_record_type() {
        for t in 0..=255u8 {
            let header = Header::new(RecordType::from_u8(t), 0xBEEF, 0x1234, 7);
            let decoded = Header::decode(&header.encode()).unwrap();
            assert_eq!(decoded, header);
            assert_eq!(decoded.record_type.as_u8(), t);
        }
    }

    #[test]
    fn header_uses_big_endian_fields() {
        let bytes = Header::new(RecordType::Stdout, 0x0102, 0x0304, 5).encode();
        assert_eq!(bytes, [1, 6, 1, 2, 3, 4, 5, 0]);
    }

    #[test]
    fn header_rejects_other_versions() {
        let mut bytes = Header::new(RecordType::Params, 1, 0, 0).encode();
        bytes[0] = 2;
        assert!(matches!(
            Header::decode(&bytes),
            Err(ProtocolError::UnsupportedVersion(2))
        ));
        bytes[0] = 0;
        assert!(matches!(
            Header::decode(&bytes),
            Err(ProtocolError::UnsupportedVersion(0))
        ));
    }

    #[test]
    fn known_record_types_have_spec_values() {
        let all = [
            (RecordType::BeginRequest, 1),
            (RecordType::AbortRequest, 2),
            (RecordType::EndRequest, 3),
            (RecordType::Params, 4),
            (RecordType::Stdin, 5),
            (RecordType::Stdout, 6),
            (RecordType::Stderr, 7),
            (RecordType::Data, 8),
            (RecordType::GetValues, 9),
            (RecordType::GetValuesResult, 10),
            (RecordType::UnknownType, 11),
        ];
        for (t, v) in all {
            assert_eq!(t.as_u8(), v);
            assert_eq!(RecordType::from_u8(v), t);
        }
        assert_eq!(RecordType::from_u8(12), RecordType::Other(12));
    }

    #[test]
    fn begin_request_body_round_trips_and_checks_length() {
        let body = BeginRequestBody {
            role: Role::Responder,
            flags: FLAG_KEEP_CONN,
        };
        let decoded = BeginRequestBody::decode(&body.encode()).unwrap();
        assert_eq!(decoded, body);
        assert!(decoded.keep_conn());
        assert_eq!(
            BeginRequestBody::decode(&[0, 2, 0, 0, 0, 0, 0, 0]).unwrap().role,
            Role::Authorizer
        );
        assert_eq!(
            BeginRequestBody::decode(&[0, 3, 0, 0, 0, 0, 0, 0]).unwrap().role,
            Role::Filter
        );
        assert_eq!(
            BeginRequestBody::decode(&[1, 0, 0, 0, 0, 0, 0, 0]).unwrap().role,
            Role::Other(256)
        );
        assert!(BeginRequestBody::decode(&[0, 1, 0]).is_err());
        assert!(BeginRequestBody::decode(&[0; 9]).is_err());
    }

    #[test]
    fn end_request_body_round_trips_and_checks_length() {
        for status in [
            ProtocolStatus::RequestComplete,
            ProtocolStatus::CantMpxConn,
            ProtocolStatus::Overloaded,
            ProtocolStatus::UnknownRole,
            ProtocolStatus::Other(9),
        ] {
            let body = EndRequestBody {
                app_status: 0xDEAD_BEEF,
                protocol_status: status,
            };
            assert_eq!(EndRequestBody::decode(&body.encode()).unwrap(), body);
        }
        assert!(EndRequestBody::decode(&[0; 7]).is_err());
    }

    #[test]
    fn padding_aligns_to_eight_bytes() {
        assert_eq!(padding_for(0), 0);
        assert_eq!(padding_for(1), 7);
        assert_eq!(padding_for(7), 1);
        assert_eq!(padding_for(8), 0);
        assert_eq!(padding_for(65535), 1);
        for n in 0..64 {
            assert_eq!((n + usize::from(padding_for(n))) % 8, 0);
            assert_eq!(padding_bytes(n).len(), usize::from(padding_for(n)));
        }
    }

    #[test]
    fn write_record_lays_out_header_content_and_padding() {
        let mut out = Vec::new();
        write_record(&mut out, RecordType::Stdout, 3, b"abc");
        assert_eq!(out, [1, 6, 0, 3, 0, 3, 5, 0, b'a', b'b', b'c', 0, 0, 0, 0, 0]);
    }

    #[test]
    fn write_stream_splits_at_65535_bytes() {
        for (len, records) in [
            (0usize, 0usize),
            (1, 1),
            (65535, 1),
            (65536, 2),
            (131070, 2),
            (131071, 3),
        ] {
            let data = vec![0xAB; len];
            let mut out = Vec::new();
            write_stream(&mut out, RecordType::Stdout, 1, &data);
            let mut offset = 0;
            let mut seen = 0;
            let mut payload = Vec::new();
            while offset < out.len() {
                let header = Header::decode(out[offset..offset + 8].try_into().unwrap()).unwrap();
                assert!(
                    header.content_length > 0,
                    "stream data must never produce an empty record"
                );
                let start = offset + HEADER_LEN;
                payload.extend_from_slice(&out[start..start + usize::from(header.content_length)]);
                offset = start + header.body_len();
                seen += 1;
            }
            assert_eq!(seen, records, "len {len}");
            assert_eq!(payload, data);
        }
    }

    #[test]
    fn end_request_and_unknown_type_encode_as_spec() {
        let mut out = Vec::new();
        write_end_request(&mut out, 7, 0, ProtocolStatus::CantMpxConn);
        assert_eq!(out, [1, 3, 0, 7, 0, 8, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
        out.clear();
        write_unknown_type(&mut out, 42);
        assert_eq!(out, [1, 11, 0, 0, 0, 8, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0]);
        out.clear();
        write_stream_end(&mut out, RecordType::Stdout, 2);
        assert_eq!(out, [1, 6, 0, 2, 0, 0, 0, 0]);
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn header_round_trips(t in any::<u8>(), id in any::<u16>(), len in any::<u16>(), pad in any::<u8>()) {
            let header = Header::new(RecordType::from_u8(t), id, len, pad);
            let bytes = header.encode();
            prop_assert_eq!(bytes[0], VERSION_1);
            prop_assert_eq!(bytes[7], 0, "the reserved byte is zero");
            prop_assert_eq!(Header::decode(&bytes), Ok(header));
            prop_assert_eq!(header.body_len(), usize::from(len) + usize::from(pad));
        }

        #[test]
        fn any_eight_bytes_decode_iff_version_one(bytes in any::<[u8; HEADER_LEN]>()) {
            match Header::decode(&bytes) {
                Ok(header) => {
                    prop_assert_eq!(bytes[0], VERSION_1);
                    let mut expected = bytes;
                    expected[7] = 0;
                    prop_assert_eq!(header.encode(), expected);
                }
                Err(err) => {
                    prop_assert_ne!(bytes[0], VERSION_1);
                    prop_assert_eq!(err, ProtocolError::UnsupportedVersion(bytes[0]));
                }
            }
        }

        #[test]
        fn record_bodies_round_trip(role in any::<u16>(), flags in any::<u8>(), app in any::<u32>(), status in any::<u8>()) {
            let begin = BeginRequestBody { role: Role::from_u16(role), flags };
            prop_assert_eq!(BeginRequestBody::decode(&begin.encode()), Ok(begin));
            prop_assert_eq!(begin.role.as_u16(), role);
            prop_assert_eq!(begin.keep_conn(), flags & FLAG_KEEP_CONN != 0);
            let end = EndRequestBody { app_status: app, protocol_status: ProtocolStatus::from_u8(status) };
            prop_assert_eq!(EndRequestBody::decode(&end.encode()), Ok(end));
            prop_assert_eq!(end.protocol_status.as_u8(), status);
        }

        #[test]
        fn fixed_bodies_reject_every_other_length(len in 0usize..64) {
            let content = vec![0u8; len];
            prop_assert_eq!(BeginRequestBody::decode(&content).is_ok(), len == 8);
            prop_assert_eq!(EndRequestBody::decode(&content).is_ok(), len == 8);
        }

        #[test]
        fn streams_become_whole_aligned_nonempty_records(
            len in prop_oneof![0usize..300, 65_530usize..65_540, 131_060usize..131_080, 0usize..200_000],
            id in any::<u16>(),
            seed in any::<u8>(),
        ) {
            let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
            let mut out = Vec::new();
            write_stream(&mut out, RecordType::Stderr, id, &data);
            write_stream_end(&mut out, RecordType::Stderr, id);
            let mut rest = &out[..];
            let mut payload = Vec::new();
            let mut empty = 0;
            while !rest.is_empty() {
                prop_assert!(rest.len() >= HEADER_LEN);
                let header = Header::decode(rest[..HEADER_LEN].try_into().unwrap()).unwrap();
                prop_assert_eq!(header.record_type, RecordType::Stderr);
                prop_assert_eq!(header.request_id, id);
                prop_assert_eq!((usize::from(header.content_length) + usize::from(header.padding_length)) % 8, 0);
                prop_assert!(rest.len() >= HEADER_LEN + header.body_len());
                let content = &rest[HEADER_LEN..HEADER_LEN + usize::from(header.content_length)];
                let padding = &rest[HEADER_LEN + content.len()..HEADER_LEN + header.body_len()];
                prop_assert!(padding.iter().all(|b| *b == 0));
                if content.is_empty() {
                    empty += 1;
                    prop_assert_eq!(rest.len(), HEADER_LEN, "the empty record is the last one");
                }
                payload.extend_from_slice(content);
                rest = &rest[HEADER_LEN + header.body_len()..];
            }
            prop_assert_eq!(empty, 1);
            prop_assert_eq!(payload, data);
        }
    }
}
