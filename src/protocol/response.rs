//! Encoding one request's response, sans-IO: the CGI header block is held back and sent in the same STDOUT record
//! as the first body bytes (one record, one write for small responses), body data becomes whole records of at most
//! 65535 bytes, and the STDOUT stream is closed by exactly one empty record, followed by END_REQUEST. The caller
//! decides when the bytes appended to its buffer are written out.

use super::record::{self, Header, ProtocolStatus, RecordType, HEADER_LEN, MAX_CONTENT_LEN};

/// The response half of one request. See the module documentation.
#[derive(Debug)]
pub struct ResponseEncoder {
    request_id: u16,
    head: Option<Vec<u8>>,
    head_sent: bool,
    finished: bool,
}

impl ResponseEncoder {
    pub fn new(request_id: u16) -> Self {
        Self {
            request_id,
            head: None,
            head_sent: false,
            finished: false,
        }
    }

    pub fn request_id(&self) -> u16 {
        self.request_id
    }

    /// Holds the CGI header block (`Status: ...\r\n...\r\n\r\n`) until the first body bytes or the end.
    /// Replaces a block that was not sent yet; ignored once one was sent.
    pub fn set_head(&mut self, head: Vec<u8>) {
        if !self.head_sent {
            self.head = Some(head);
        }
    }

    /// Whether a header block has been written to the output.
    pub fn head_sent(&self) -> bool {
        self.head_sent
    }

    /// Whether [`ResponseEncoder::finish`] ran.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Appends `data` as STDOUT records, preceded in the same record by the held header block, if any.
    pub fn body(&mut self, out: &mut Vec<u8>, data: &[u8]) {
        if self.finished || data.is_empty() {
            return;
        }
        self.write_body(out, data);
    }

    fn write_body(&mut self, out: &mut Vec<u8>, data: &[u8]) {
        let head = self.head.take().unwrap_or_default();
        self.head_sent |= !head.is_empty();
        let mut data = data;
        if !head.is_empty() {
            if head.len() + data.len() <= MAX_CONTENT_LEN {
                self.coalesced_record(out, &head, data);
                return;
            }
            // A header block larger than a record goes out on its own records; then the body.
            if head.len() > MAX_CONTENT_LEN {
                record::write_stream(out, RecordType::Stdout, self.request_id, &head);
            } else {
                let first = MAX_CONTENT_LEN - head.len();
                self.coalesced_record(out, &head, &data[..first]);
                data = &data[first..];
            }
        }
        record::write_stream(out, RecordType::Stdout, self.request_id, data);
    }

    fn coalesced_record(&self, out: &mut Vec<u8>, head: &[u8], data: &[u8]) {
        let len = head.len() + data.len();
        // Callers keep len <= MAX_CONTENT_LEN, so the cast cannot truncate.
        let header = Header::new(
            RecordType::Stdout,
            self.request_id,
            len as u16,
            record::padding_for(len),
        );
        out.reserve(HEADER_LEN + len + 8);
        out.extend_from_slice(&header.encode());
        out.extend_from_slice(head);
        out.extend_from_slice(data);
        out.extend_from_slice(record::padding_bytes(len));
    }

    /// Appends `data` as FCGI_STDERR records (the web server logs them, IIS may turn them into a 500).
    pub fn stderr(&mut self, out: &mut Vec<u8>, data: &[u8]) {
        if !self.finished {
            record::write_stream(out, RecordType::Stderr, self.request_id, data);
        }
    }

    /// Ends the response: the held header block (if no body was ever sent), the single empty STDOUT record, and
    /// END_REQUEST with `app_status`. Does nothing the second time.
    pub fn finish(&mut self, out: &mut Vec<u8>, app_status: u32) {
        if self.finished {
            return;
        }
        if self.head.is_some() {
            self.write_body(out, &[]);
        }
        self.finished = true;
        record::write_stream_end(out, RecordType::Stdout, self.request_id);
        record::write_end_request(out, self.request_id, app_status, ProtocolStatus::RequestComplete);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::record::EndRequestBody;

    /// Splits encoded output into (type, id, content) triples, checking framing as it goes.
    fn records(mut bytes: &[u8]) -> Vec<(RecordType, u16, Vec<u8>)> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let header = Header::decode(bytes[..8].try_into().unwrap()).unwrap();
            assert!(usize::from(header.content_length) <= MAX_CONTENT_LEN);
            let content = bytes[8..8 + usize::from(header.content_length)].to_vec();
            bytes = &bytes[8 + header.body_len()..];
            out.push((header.record_type, header.request_id, content));
        }
        out
    }

    fn empty_stdout_count(recs: &[(RecordType, u16, Vec<u8>)]) -> usize {
        recs.iter()
            .filter(|(t, _, c)| *t == RecordType::Stdout && c.is_empty())
            .count()
    }

    #[test]
    fn head_and_first_body_bytes_share_one_record() {
        let mut enc = ResponseEncoder::new(5);
        let mut out = Vec::new();
        enc.set_head(b"Status: 200 OK\r\n\r\n".to_vec());
        enc.body(&mut out, b"hello");
        enc.finish(&mut out, 0);
        let recs = records(&out);
        assert_eq!(recs.len(), 3);
        assert_eq!(
            recs[0],
            (RecordType::Stdout, 5, b"Status: 200 OK\r\n\r\nhello".to_vec())
        );
        assert_eq!(recs[1], (RecordType::Stdout, 5, Vec::new()));
        assert_eq!(recs[2].0, RecordType::EndRequest);
        let end = EndRequestBody::decode(&recs[2].2).unwrap();
        assert_eq!(
            (end.app_status, end.protocol_status),
            (0, ProtocolStatus::RequestComplete)
        );
    }

    #[test]
    fn exactly_one_empty_stdout_however_many_writes() {
        let mut enc = ResponseEncoder::new(1);
        let mut out = Vec::new();
        enc.set_head(b"Status: 200 OK\r\n\r\n".to_vec());
        for i in 0..10 {
            enc.body(&mut out, format!("chunk {i}").as_bytes());
            enc.body(&mut out, b"");
        }
        enc.finish(&mut out, 0);
        enc.finish(&mut out, 0);
        let recs = records(&out);
        assert_eq!(empty_stdout_count(&recs), 1);
        assert_eq!(recs.iter().filter(|r| r.0 == RecordType::EndRequest).count(), 1);
        assert_eq!(recs[recs.len() - 2], (RecordType::Stdout, 1, Vec::new()));
    }

    #[test]
    fn head_without_body_is_sent_at_finish() {
        let mut enc = ResponseEncoder::new(1);
        let mut out = Vec::new();
        enc.set_head(b"Status: 204 No Content\r\n\r\n".to_vec());
        enc.body(&mut out, b"");
        assert!(out.is_empty(), "an empty body chunk must not send the held headers");
        enc.finish(&mut out, 0);
        let recs = records(&out);
        assert_eq!(recs[0].2, b"Status: 204 No Content\r\n\r\n");
        assert_eq!(empty_stdout_count(&recs), 1);
    }

    #[test]
    fn head_can_be_replaced_until_sent() {
        let mut enc = ResponseEncoder::new(1);
        let mut out = Vec::new();
        enc.set_head(b"Status: 200 OK\r\n\r\n".to_vec());
        enc.set_head(b"Status: 500 Internal Server Error\r\n\r\n".to_vec());
        enc.body(&mut out, b"x");
        enc.set_head(b"Status: 200 OK\r\n\r\n".to_vec());
        enc.finish(&mut out, 0);
        let recs = records(&out);
        assert_eq!(recs[0].2, b"Status: 500 Internal Server Error\r\n\r\nx");
        assert!(enc.head_sent());
    }

    #[test]
    fn large_bodies_split_into_whole_records() {
        for len in [65535 - 19, 65535 - 18, 65535, 65536, 200_000] {
            let body: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            let head = b"Status: 200 OK\r\n\r\n".to_vec();
            let mut enc = ResponseEncoder::new(2);
            let mut out = Vec::new();
            enc.set_head(head.clone());
            enc.body(&mut out, &body);
            enc.finish(&mut out, 0);
            let recs = records(&out);
            let stdout: Vec<u8> = recs
                .iter()
                .filter(|r| r.0 == RecordType::Stdout)
                .flat_map(|r| r.2.clone())
                .collect();
            assert_eq!(stdout.len(), head.len() + len);
            assert_eq!(&stdout[..head.len()], &head[..]);
            assert_eq!(&stdout[head.len()..], &body[..]);
            assert_eq!(empty_stdout_count(&recs), 1);
        }
    }

    #[test]
    fn huge_header_block_is_split_too() {
        let head = vec![b'h'; 70_000];
        let mut enc = ResponseEncoder::new(2);
        let mut out = Vec::new();
        enc.set_head(head.clone());
        enc.body(&mut out, b"body");
        enc.finish(&mut out, 0);
        let stdout: Vec<u8> = records(&out)
            .iter()
            .filter(|r| r.0 == RecordType::Stdout)
            .flat_map(|r| r.2.clone())
            .collect();
        assert_eq!(stdout.len(), 70_004);
    }

    #[test]
    fn stderr_records_and_nothing_after_finish() {
        let mut enc = ResponseEncoder::new(3);
        let mut out = Vec::new();
        enc.stderr(&mut out, b"warning");
        enc.finish(&mut out, 1);
        let before = out.len();
        enc.stderr(&mut out, b"late");
        enc.body(&mut out, b"late");
        assert_eq!(out.len(), before);
        let recs = records(&out);
        assert_eq!(recs[0], (RecordType::Stderr, 3, b"warning".to_vec()));
        assert_eq!(EndRequestBody::decode(&recs.last().unwrap().2).unwrap().app_status, 1);
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use crate::protocol::record::EndRequestBody;
    use proptest::collection::vec;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Head(usize),
        Body(usize),
        Stderr(usize),
        Finish(u32),
    }

    fn size() -> impl Strategy<Value = usize> {
        prop_oneof![
            4 => 0usize..100,
            2 => 65_500usize..65_540,
            1 => 0usize..150_000,
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            1 => size().prop_map(Op::Head),
            4 => size().prop_map(Op::Body),
            1 => (0usize..70_000).prop_map(Op::Stderr),
            1 => any::<u32>().prop_map(Op::Finish),
        ]
    }

    fn fill(len: usize, tag: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_add(tag)).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Whatever the sequence of calls, the output is whole records of at most 65535 bytes, the STDOUT stream
        /// carries exactly the (held) header block followed by the body bytes, and it ends with one empty STDOUT
        /// record followed by one END_REQUEST, which is the last record.
        #[test]
        fn output_is_whole_records_ending_once(id in 1u16.., ops in vec(op(), 0..8), last in any::<u32>()) {
            let mut enc = ResponseEncoder::new(id);
            let mut out = Vec::new();
            let mut expected_stdout = Vec::new();
            let mut expected_stderr = Vec::new();
            let mut held: Option<Vec<u8>> = None;
            let mut finished_with = None;
            for (n, op) in ops.iter().chain(std::iter::once(&Op::Finish(last))).enumerate() {
                let tag = n as u8;
                match op {
                    Op::Head(len) => {
                        let head = fill(*len, tag);
                        if !enc.head_sent() {
                            held = Some(head.clone());
                        }
                        enc.set_head(head);
                    }
                    Op::Body(len) => {
                        let data = fill(*len, tag);
                        if finished_with.is_none() && !data.is_empty() {
                            expected_stdout.extend(held.take().unwrap_or_default());
                            expected_stdout.extend_from_slice(&data);
                        }
                        enc.body(&mut out, &data);
                    }
                    Op::Stderr(len) => {
                        let data = fill(*len, tag);
                        if finished_with.is_none() {
                            expected_stderr.extend_from_slice(&data);
                        }
                        enc.stderr(&mut out, &data);
                    }
                    Op::Finish(status) => {
                        if finished_with.is_none() {
                            expected_stdout.extend(held.take().unwrap_or_default());
                            finished_with = Some(*status);
                        }
                        enc.finish(&mut out, *status);
                        prop_assert!(enc.finished());
                    }
                }
            }

            let mut rest = &out[..];
            let mut records = Vec::new();
            while !rest.is_empty() {
                prop_assert!(rest.len() >= HEADER_LEN, "a partial header at the end");
                let header = Header::decode(rest[..HEADER_LEN].try_into().unwrap()).unwrap();
                prop_assert!(usize::from(header.content_length) <= MAX_CONTENT_LEN);
                prop_assert_eq!(header.request_id, id);
                prop_assert!(rest.len() >= HEADER_LEN + header.body_len(), "a partial record at the end");
                let content = rest[HEADER_LEN..HEADER_LEN + usize::from(header.content_length)].to_vec();
                rest = &rest[HEADER_LEN + header.body_len()..];
                records.push((header.record_type, content));
            }
            let n = records.len();
            prop_assert!(n >= 2);
            prop_assert_eq!(&records[n - 2], &(RecordType::Stdout, Vec::new()));
            prop_assert_eq!(records[n - 1].0, RecordType::EndRequest);
            let end = EndRequestBody::decode(&records[n - 1].1).unwrap();
            prop_assert_eq!(end.app_status, finished_with.unwrap());
            prop_assert_eq!(end.protocol_status, ProtocolStatus::RequestComplete);
            let empty_stdout = records.iter().filter(|(t, c)| *t == RecordType::Stdout && c.is_empty()).count();
            prop_assert_eq!(empty_stdout, 1);
            prop_assert_eq!(records.iter().filter(|(t, _)| *t == RecordType::EndRequest).count(), 1);
            prop_assert!(records.iter().all(|(t, c)| *t != RecordType::Stderr || !c.is_empty()));
            let stdout: Vec<u8> = records.iter().filter(|(t, _)| *t == RecordType::Stdout).flat_map(|(_, c)| c.clone()).collect();
            let stderr: Vec<u8> = records.iter().filter(|(t, _)| *t == RecordType::Stderr).flat_map(|(_, c)| c.clone()).collect();
            prop_assert_eq!(stdout.len(), expected_stdout.len());
            prop_assert!(stdout == expected_stdout);
            prop_assert!(stderr == expected_stderr);
        }
    }
}
