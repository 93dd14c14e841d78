//! The request-body spool: where the rest of a request's body waits when the application starts answering
//! before it has read all of it. nginx stops sending the body once the response headers have reached it, and
//! mod_fcgid and IIS send the whole body before they read any answer, so a response cannot go out while body
//! bytes are still on their way; the exchange reads them into this spool first (memory up to
//! [`MEMORY_LIMIT`], then an unlinked temporary file, so a large upload never sits in memory) and the
//! application reads on from here.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

/// Body bytes held in memory before the spool moves to a temporary file.
pub const MEMORY_LIMIT: usize = 1024 * 1024;

/// How much of the temporary file is read back at a time.
const READ_CHUNK: usize = 64 * 1024;

/// See the module documentation. Bytes come out in the order they went in.
#[derive(Default)]
pub struct Spool {
    memory: Vec<u8>,
    memory_pos: usize,
    file: Option<SpoolFile>,
}

struct SpoolFile {
    file: File,
    written: u64,
    read: u64,
    /// Bytes read back from the file and not consumed yet.
    chunk: Vec<u8>,
    chunk_pos: usize,
}

impl Spool {
    /// Appends body bytes.
    ///
    /// # Errors
    /// When the temporary file cannot be created or written (a full disk).
    pub fn push(&mut self, data: &[u8]) -> io::Result<()> {
        if self.file.is_none() && self.memory.len() + data.len() <= MEMORY_LIMIT {
            self.memory.extend_from_slice(data);
            return Ok(());
        }
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(SpoolFile {
                file: tempfile::tempfile()?,
                written: 0,
                read: 0,
                chunk: Vec::new(),
                chunk_pos: 0,
            }),
        };
        file.file.seek(SeekFrom::Start(file.written))?;
        file.file.write_all(data)?;
        file.written += data.len() as u64;
        Ok(())
    }

    /// Makes the next unread bytes available through [`Spool::chunk`].
    ///
    /// # Errors
    /// When the temporary file cannot be read back.
    pub fn fill(&mut self) -> io::Result<()> {
        if self.memory_pos < self.memory.len() {
            return Ok(());
        }
        let Some(file) = &mut self.file else {
            return Ok(());
        };
        if file.chunk_pos == file.chunk.len() && file.read < file.written {
            let want = usize::try_from(file.written - file.read).map_or(READ_CHUNK, |left| left.min(READ_CHUNK));
            file.chunk.resize(want, 0);
            file.file.seek(SeekFrom::Start(file.read))?;
            file.file.read_exact(&mut file.chunk)?;
            file.read += want as u64;
            file.chunk_pos = 0;
        }
        Ok(())
    }

    /// The unread bytes [`Spool::fill`] made available (empty when everything pushed has been consumed).
    pub fn chunk(&self) -> &[u8] {
        if self.memory_pos < self.memory.len() {
            return &self.memory[self.memory_pos..];
        }
        self.file.as_ref().map_or(&[], |f| &f.chunk[f.chunk_pos..])
    }

    /// Marks `n` bytes of [`Spool::chunk`] as read.
    pub fn consume(&mut self, n: usize) {
        if self.memory_pos < self.memory.len() {
            self.memory_pos = (self.memory_pos + n).min(self.memory.len());
            if self.memory_pos == self.memory.len() && self.file.is_none() {
                // Nothing more can follow in memory once a file exists; without one, start over.
                self.memory.clear();
                self.memory_pos = 0;
            }
        } else if let Some(file) = &mut self.file {
            file.chunk_pos = (file.chunk_pos + n).min(file.chunk.len());
        }
    }

    /// Whether every byte pushed has been consumed.
    pub fn is_empty(&self) -> bool {
        self.memory_pos == self.memory.len()
            && self
                .file
                .as_ref()
                .is_none_or(|f| f.read == f.written && f.chunk_pos == f.chunk.len())
    }

    /// Whether the spool went to a temporary file.
    pub fn on_disk(&self) -> bool {
        self.file.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(spool: &mut Spool, step: usize) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            spool.fill().unwrap();
            let chunk = spool.chunk();
            if chunk.is_empty() {
                return out;
            }
            let n = chunk.len().min(step);
            out.extend_from_slice(&chunk[..n]);
            spool.consume(n);
        }
    }

    #[test]
    fn small_bodies_stay_in_memory() {
        let mut spool = Spool::default();
        assert!(spool.is_empty());
        spool.push(b"hello ").unwrap();
        spool.push(b"world").unwrap();
        assert!(!spool.on_disk());
        assert!(!spool.is_empty());
        assert_eq!(drain(&mut spool, 4), b"hello world");
        assert!(spool.is_empty());
    }

    #[test]
    fn large_bodies_go_to_a_file_and_come_back_in_order() {
        let mut spool = Spool::default();
        let data: Vec<u8> = (0..3 * MEMORY_LIMIT + 12345).map(|i| (i % 251) as u8).collect();
        for piece in data.chunks(40_000) {
            spool.push(piece).unwrap();
        }
        assert!(spool.on_disk());
        assert_eq!(drain(&mut spool, 70_000), data);
        assert!(spool.is_empty());
    }

    #[test]
    fn reading_and_pushing_interleave() {
        let mut spool = Spool::default();
        let mut expected = Vec::new();
        let mut got = Vec::new();
        for round in 0..40u8 {
            let piece = vec![round; 100_000];
            spool.push(&piece).unwrap();
            expected.extend_from_slice(&piece);
            spool.fill().unwrap();
            let chunk = spool.chunk();
            let n = chunk.len().min(30_000);
            got.extend_from_slice(&chunk[..n]);
            spool.consume(n);
        }
        got.extend(drain(&mut spool, 9_999));
        assert_eq!(got, expected);
    }
}
