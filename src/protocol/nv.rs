//! FastCGI name-value pairs (spec §3.4): lengths of one byte (< 128) or four bytes (high bit set), then the name and
//! value bytes. Used by PARAMS, GET_VALUES and GET_VALUES_RESULT. Decoding is zero-copy over a borrowed buffer;
//! [`Params`] keeps one request's pairs in a single allocation.

use std::ops::Range;

use super::ProtocolError;

/// Largest length a 4-byte length field can hold (31 bits).
pub const MAX_NV_LEN: usize = 0x7FFF_FFFF;

/// Appends one length in the shortest encoding.
///
/// # Panics
/// If `len` exceeds 31 bits, which no caller in this crate can produce (records are at most 64 KiB).
pub fn write_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        // Checked just above: fits in 7 bits.
        out.push(len as u8);
    } else {
        let len = u32::try_from(len)
            .ok()
            .filter(|l| *l <= 0x7FFF_FFFF)
            .expect("name/value length over 31 bits");
        out.extend_from_slice(&(len | 0x8000_0000).to_be_bytes());
    }
}

/// Appends one name-value pair.
pub fn write_pair(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    write_len(out, name.len());
    write_len(out, value.len());
    out.extend_from_slice(name);
    out.extend_from_slice(value);
}

/// Reads one length at `pos`, returning it and the position after it.
fn read_len(buf: &[u8], pos: usize) -> Result<(usize, usize), ProtocolError> {
    let first = *buf
        .get(pos)
        .ok_or(ProtocolError::MalformedNameValue("truncated length"))?;
    if first & 0x80 == 0 {
        return Ok((usize::from(first), pos + 1));
    }
    let bytes = buf
        .get(pos..pos + 4)
        .ok_or(ProtocolError::MalformedNameValue("truncated 4-byte length"))?;
    let len = u32::from_be_bytes([bytes[0] & 0x7F, bytes[1], bytes[2], bytes[3]]);
    let len = usize::try_from(len).map_err(|_| ProtocolError::MalformedNameValue("length does not fit"))?;
    Ok((len, pos + 4))
}

/// Iterates over the pairs in `buf`, yielding byte slices or the first decoding error.
pub fn pairs(buf: &[u8]) -> PairIter<'_> {
    PairIter {
        buf,
        pos: 0,
        failed: false,
    }
}

pub struct PairIter<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> PairIter<'a> {
    fn next_ranges(&mut self) -> Result<(Range<usize>, Range<usize>), ProtocolError> {
        let (name_len, pos) = read_len(self.buf, self.pos)?;
        let (value_len, pos) = read_len(self.buf, pos)?;
        let name_end = pos
            .checked_add(name_len)
            .ok_or(ProtocolError::MalformedNameValue("name overflows"))?;
        let value_end = name_end
            .checked_add(value_len)
            .ok_or(ProtocolError::MalformedNameValue("value overflows"))?;
        if value_end > self.buf.len() {
            return Err(ProtocolError::MalformedNameValue(
                "name or value runs past the end of the data",
            ));
        }
        self.pos = value_end;
        Ok((pos..name_end, name_end..value_end))
    }
}

impl<'a> Iterator for PairIter<'a> {
    type Item = Result<(&'a [u8], &'a [u8]), ProtocolError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        match self.next_ranges() {
            Ok((name, value)) => Some(Ok((&self.buf[name], &self.buf[value]))),
            Err(err) => {
                self.failed = true;
                Some(Err(err))
            }
        }
    }
}

/// A request's PARAMS: the raw bytes of all PARAMS records and an index of where each name and value lies.
/// Names keep their order and duplicates; lookups return the last value, which is what CGI servers do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    raw: Vec<u8>,
    index: Vec<(Range<usize>, Range<usize>)>,
}

impl Params {
    /// Indexes the concatenated content of a request's PARAMS records.
    ///
    /// # Errors
    /// [`ProtocolError::MalformedNameValue`] for a truncated or overlong pair, and
    /// [`ProtocolError::NameTooLong`] for a name over `max_name_len`.
    pub fn parse(raw: Vec<u8>, max_name_len: usize) -> Result<Self, ProtocolError> {
        let mut index = Vec::with_capacity(32);
        let mut iter = PairIter {
            buf: &raw,
            pos: 0,
            failed: false,
        };
        while iter.pos < raw.len() {
            let (name, value) = iter.next_ranges()?;
            if name.len() > max_name_len {
                return Err(ProtocolError::NameTooLong {
                    len: name.len(),
                    limit: max_name_len,
                });
            }
            index.push((name, value));
        }
        Ok(Self { raw, index })
    }

    /// Builds params from pairs (tests, tools).
    pub fn from_pairs<'a, I: IntoIterator<Item = (&'a [u8], &'a [u8])>>(pairs: I) -> Self {
        let mut raw = Vec::new();
        for (name, value) in pairs {
            write_pair(&mut raw, name, value);
        }
        // Pairs we just encoded always parse.
        Self::parse(raw, usize::MAX).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Size in bytes of the encoded params.
    pub fn encoded_len(&self) -> usize {
        self.raw.len()
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&[u8], &[u8])> + ExactSizeIterator + '_ {
        self.index
            .iter()
            .map(|(n, v)| (&self.raw[n.clone()], &self.raw[v.clone()]))
    }

    /// The value of the last pair named `name`.
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.iter().filter(|(n, _)| *n == name).map(|(_, v)| v).next_back()
    }

    /// [`Params::get`] as text, lossy for non-UTF-8 bytes.
    pub fn get_str(&self, name: &str) -> Option<std::borrow::Cow<'_, str>> {
        self.get(name.as_bytes()).map(String::from_utf8_lossy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (n, v) in pairs {
            write_pair(&mut out, n, v);
        }
        out
    }

    #[test]
    fn one_byte_lengths_below_128() {
        let out = encode(&[(b"A", b"bc")]);
        assert_eq!(out, [1, 2, b'A', b'b', b'c']);
        let long = vec![b'x'; 127];
        let out = encode(&[(b"N", &long)]);
        assert_eq!(out[1], 127);
        assert_eq!(out.len(), 2 + 1 + 127);
    }

    #[test]
    fn four_byte_lengths_from_128() {
        let value = vec![b'v'; 128];
        let out = encode(&[(b"N", &value)]);
        assert_eq!(&out[..5], &[1, 0x80, 0, 0, 128]);
        let value = vec![b'v'; 70_000];
        let out = encode(&[(&value[..200], &value)]);
        assert_eq!(&out[..8], &[0x80, 0, 0, 200, 0x80, 0x01, 0x11, 0x70]);
        let decoded: Vec<_> = pairs(&out).collect::<Result<_, _>>().unwrap();
        assert_eq!(decoded, vec![(&value[..200], &value[..])]);
    }

    #[test]
    fn four_byte_length_of_small_value_is_accepted() {
        // Encoders may use the long form for short lengths; the spec allows it.
        let buf = [0x80, 0, 0, 1, 0x80, 0, 0, 2, b'a', b'x', b'y'];
        let decoded: Vec<_> = pairs(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(decoded, vec![(&b"a"[..], &b"xy"[..])]);
    }

    #[test]
    fn empty_names_and_values_round_trip() {
        let out = encode(&[(b"", b""), (b"K", b"")]);
        let decoded: Vec<_> = pairs(&out).collect::<Result<_, _>>().unwrap();
        assert_eq!(decoded, vec![(&b""[..], &b""[..]), (&b"K"[..], &b""[..])]);
    }

    #[test]
    fn truncated_input_is_an_error_at_every_cut() {
        let out = encode(&[(b"REQUEST_METHOD", b"GET"), (b"LONG", &[b'z'; 300])]);
        for cut in 1..out.len() {
            let result: Result<Vec<_>, _> = pairs(&out[..cut]).collect();
            let boundary = cut == 2 + 14 + 3;
            assert_eq!(result.is_ok(), boundary, "cut at {cut}");
        }
    }

    #[test]
    fn params_lookup_returns_last_duplicate() {
        let params = Params::from_pairs([(&b"A"[..], &b"1"[..]), (b"B", b"2"), (b"A", b"3")]);
        assert_eq!(params.len(), 3);
        assert_eq!(params.get(b"A"), Some(&b"3"[..]));
        assert_eq!(params.get(b"B"), Some(&b"2"[..]));
        assert_eq!(params.get(b"C"), None);
        assert_eq!(params.get_str("B").as_deref(), Some("2"));
        let names: Vec<_> = params.iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec![&b"A"[..], b"B", b"A"]);
    }

    #[test]
    fn params_rejects_long_names() {
        let raw = encode(&[(&[b'n'; 65][..], b"v")]);
        assert!(matches!(
            Params::parse(raw.clone(), 64),
            Err(ProtocolError::NameTooLong { len: 65, limit: 64 })
        ));
        assert!(Params::parse(raw, 65).is_ok());
    }

    #[test]
    fn params_rejects_length_past_end() {
        let raw = vec![5, 1, b'a'];
        assert!(matches!(
            Params::parse(raw, 100),
            Err(ProtocolError::MalformedNameValue(_))
        ));
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    /// Lengths around the 1-byte/4-byte switch (127/128) and a few larger ones, or anything small.
    fn length() -> impl Strategy<Value = usize> {
        prop_oneof![
            4 => 0usize..40,
            2 => 120usize..140,
            1 => prop::sample::select(vec![0usize, 1, 127, 128, 129, 255, 256, 65_535, 65_536, 70_000]),
        ]
    }

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        (length(), any::<u8>()).prop_map(|(len, seed)| (0..len).map(|i| (i as u8) ^ seed).collect())
    }

    fn pair_list() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
        vec((bytes(), bytes()), 0..6)
    }

    fn encode_len(out: &mut Vec<u8>, len: usize, long: bool) {
        if long {
            out.extend_from_slice(&(u32::try_from(len).unwrap() | 0x8000_0000).to_be_bytes());
        } else {
            write_len(out, len);
        }
    }

    fn borrowed(list: &[(Vec<u8>, Vec<u8>)]) -> Vec<(&[u8], &[u8])> {
        list.iter().map(|(n, v)| (&n[..], &v[..])).collect()
    }

    proptest! {
        #[test]
        fn pairs_round_trip_with_shortest_lengths(list in pair_list()) {
            let mut out = Vec::new();
            let mut boundaries = vec![0];
            let mut expected_len = 0;
            for (n, v) in &list {
                write_pair(&mut out, n, v);
                boundaries.push(out.len());
                let width = |l: usize| if l < 128 { 1 } else { 4 };
                expected_len += width(n.len()) + width(v.len()) + n.len() + v.len();
            }
            prop_assert_eq!(out.len(), expected_len);
            let decoded: Vec<_> = pairs(&out).collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(&decoded, &borrowed(&list));
            let params = Params::parse(out.clone(), usize::MAX).unwrap();
            prop_assert_eq!(params.iter().collect::<Vec<_>>(), borrowed(&list));
            prop_assert_eq!(params.encoded_len(), out.len());
            // Every cut that is not between two pairs is an error, never a panic or a short pair.
            // All cuts of small encodings; around the pair boundaries and a sample of the rest for large ones.
            let cuts: Vec<usize> = if out.len() <= 4096 {
                (0..out.len()).collect()
            } else {
                boundaries
                    .iter()
                    .flat_map(|b| b.saturating_sub(9)..(b + 9).min(out.len()))
                    .chain((0..out.len()).step_by(997))
                    .collect()
            };
            for cut in cuts {
                let whole = boundaries.contains(&cut);
                prop_assert_eq!(pairs(&out[..cut]).collect::<Result<Vec<_>, _>>().is_ok(), whole);
                prop_assert_eq!(Params::parse(out[..cut].to_vec(), usize::MAX).is_ok(), whole);
            }
        }

        #[test]
        fn four_byte_form_of_any_length_decodes_the_same(list in pair_list(), long in vec(any::<(bool, bool)>(), 6)) {
            let mut out = Vec::new();
            for ((n, v), (ln, lv)) in list.iter().zip(long.iter().cycle()) {
                encode_len(&mut out, n.len(), *ln || n.len() >= 128);
                encode_len(&mut out, v.len(), *lv || v.len() >= 128);
                out.extend_from_slice(n);
                out.extend_from_slice(v);
            }
            let decoded: Vec<_> = pairs(&out).collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(decoded, borrowed(&list));
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_reencode(raw in vec(any::<u8>(), 0..512), max_name in 0usize..64) {
            let iterated: Vec<_> = pairs(&raw).collect();
            // The iterator stops after its first error.
            if let Some(pos) = iterated.iter().position(Result::is_err) {
                prop_assert_eq!(pos, iterated.len() - 1);
            }
            if let Ok(params) = Params::parse(raw.clone(), max_name) {
                prop_assert!(params.iter().all(|(n, _)| n.len() <= max_name));
                let again = Params::from_pairs(params.iter());
                prop_assert_eq!(again.iter().collect::<Vec<_>>(), params.iter().collect::<Vec<_>>());
                let list: Vec<_> = pairs(&raw).collect::<Result<_, _>>().unwrap();
                prop_assert_eq!(list, params.iter().collect::<Vec<_>>());
            }
        }
    }
}
