//! The `WSGI_LOG` file: opened for appending so that several processes (IIS `maxInstances`, several pyfcgi on
//! one log) can share it, each write one whole batch of lines (`O_APPEND` on Unix, `FILE_APPEND_DATA` on
//! Windows: the system puts every write at the end in one piece). On Windows it is opened with
//! `FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE`, so admins and tools can read, rename or delete it
//! while IIS runs. It follows its path: about once a second, and on request (SIGUSR1 after logrotate), it
//! checks that the path still names the file it writes, and reopens it when it does not (renamed, deleted, or
//! rotated by another process). Built-in rotation ([`RotatePolicy`]) renames `NAME` to `NAME.1` (older files
//! shift up, the one past `keep` is deleted) and starts a new `NAME`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::rotate::{utc_day, RotatePolicy};

/// How often a write checks whether the path still names the file.
const FOLLOW_INTERVAL: Duration = Duration::from_secs(1);
/// After a rotation fails (a file held without delete sharing, no permission), the next try waits this long.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(60);

/// Which file a handle or path refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId(u64, u64);

#[cfg(unix)]
fn id_of_file(file: &File) -> io::Result<FileId> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata()?;
    Ok(FileId(meta.dev(), meta.ino()))
}

#[cfg(unix)]
fn id_of_path(path: &Path) -> io::Result<FileId> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    Ok(FileId(meta.dev(), meta.ino()))
}

#[cfg(windows)]
fn id_of_file(file: &File) -> io::Result<FileId> {
    use std::os::windows::io::AsRawHandle;
    use windows_sys::Win32::Storage::FileSystem::{GetFileInformationByHandle, BY_HANDLE_FILE_INFORMATION};
    // SAFETY: an all-zero BY_HANDLE_FILE_INFORMATION is a valid value of this plain C struct.
    let mut info: BY_HANDLE_FILE_INFORMATION = unsafe { std::mem::zeroed() };
    // SAFETY: the handle belongs to `file`, which outlives the call; `info` is a valid out pointer.
    if unsafe { GetFileInformationByHandle(file.as_raw_handle(), &mut info) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(FileId(
        u64::from(info.dwVolumeSerialNumber),
        (u64::from(info.nFileIndexHigh) << 32) | u64::from(info.nFileIndexLow),
    ))
}

#[cfg(windows)]
fn id_of_path(path: &Path) -> io::Result<FileId> {
    use std::os::windows::fs::OpenOptionsExt;
    // No access rights: only the file's identity is asked for, and the open blocks nobody.
    let file = OpenOptions::new().access_mode(0).share_mode(SHARE_ALL).open(path)?;
    id_of_file(&file)
}

#[cfg(windows)]
const SHARE_ALL: u32 = windows_sys::Win32::Storage::FileSystem::FILE_SHARE_READ
    | windows_sys::Win32::Storage::FileSystem::FILE_SHARE_WRITE
    | windows_sys::Win32::Storage::FileSystem::FILE_SHARE_DELETE;

/// Opens `path` for appending, creating it (and its folder) if needed.
pub(super) fn open_append(path: &Path) -> io::Result<File> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(parent);
    }
    let mut options = OpenOptions::new();
    // std's append mode is O_APPEND on Unix and FILE_APPEND_DATA without FILE_WRITE_DATA on Windows.
    options.create(true).append(true);
    #[cfg(windows)]
    {
        use std::os::windows::fs::OpenOptionsExt;
        options.share_mode(SHARE_ALL);
    }
    options.open(path)
}

fn now_day() -> u64 {
    utc_day(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
}

/// The UTC day the file's content is from: its last modification, or today for a new or empty file.
fn content_day(file: &File) -> u64 {
    file.metadata()
        .ok()
        .filter(|m| m.len() > 0)
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or_else(now_day, |d| utc_day(d.as_secs()))
}

/// See the module documentation.
pub(super) struct LogFile {
    path: PathBuf,
    file: File,
    id: Option<FileId>,
    policy: Option<RotatePolicy>,
    /// The file's size as last seen, plus what this process wrote since.
    size: u64,
    day: u64,
    followed: Instant,
    retry_rotation_at: Option<Instant>,
}

impl LogFile {
    pub(super) fn open(path: &Path, policy: Option<RotatePolicy>) -> io::Result<Self> {
        let file = open_append(path)?;
        Ok(Self::with_file(path.to_path_buf(), file, policy))
    }

    fn with_file(path: PathBuf, file: File, policy: Option<RotatePolicy>) -> Self {
        let size = file.metadata().map_or(0, |m| m.len());
        Self {
            id: id_of_file(&file).ok(),
            day: content_day(&file),
            path,
            file,
            policy,
            size,
            followed: Instant::now(),
            retry_rotation_at: None,
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn set_policy(&mut self, policy: Option<RotatePolicy>) {
        self.policy = policy;
    }

    /// Opens the path again (after logrotate renamed it, or when it no longer names our file). On failure the
    /// current file is kept.
    pub(super) fn reopen(&mut self) -> io::Result<()> {
        let file = open_append(&self.path)?;
        *self = Self::with_file(self.path.clone(), file, self.policy);
        Ok(())
    }

    /// Whether the path still names the file written to. Unknown (an error) counts as yes, so a transient
    /// failure does not make every process reopen.
    fn path_is_ours(&self) -> bool {
        match (self.id, id_of_path(&self.path)) {
            (Some(ours), Ok(theirs)) => ours == theirs,
            (_, Err(err)) if err.kind() == io::ErrorKind::NotFound => false,
            _ => true,
        }
    }

    /// Follows the path (at most once a second unless `force`) and refreshes the size others may have grown.
    fn follow(&mut self, force: bool) {
        if !force && self.followed.elapsed() < FOLLOW_INTERVAL {
            return;
        }
        self.followed = Instant::now();
        if !self.path_is_ours() {
            let _ = self.reopen();
            return;
        }
        if let Ok(meta) = self.file.metadata() {
            self.size = meta.len();
        }
    }

    /// Writes whole lines in one write, rotating first if the policy says so. A failed rotation is reported
    /// in the log itself and retried a minute later; the lines are written to the current file regardless.
    pub(super) fn write_lines(&mut self, lines: &[u8]) -> io::Result<()> {
        self.follow(false);
        if let Some(policy) = self.policy {
            let waiting = self.retry_rotation_at.is_some_and(|at| Instant::now() < at);
            if !waiting && policy.due(self.size, lines.len() as u64, self.day, now_day()) {
                // Another process may have rotated already: then the path names a fresh file to use instead.
                self.follow(true);
                if policy.due(self.size, lines.len() as u64, self.day, now_day()) {
                    if let Err(err) = self.rotate(policy.keep) {
                        self.retry_rotation_at = Some(Instant::now() + RETRY_AFTER_FAILURE);
                        let note = format!(
                            "pyfcgi [{}]: cannot rotate {}: {err}; writing on to it, next try in {} s\n",
                            std::process::id(),
                            self.path.display(),
                            RETRY_AFTER_FAILURE.as_secs()
                        );
                        let _ = self.file.write_all(note.as_bytes());
                    }
                }
            }
        }
        self.file.write_all(lines)?;
        self.size += lines.len() as u64;
        Ok(())
    }

    /// `NAME.keep` is deleted, `NAME.i` becomes `NAME.(i+1)`, `NAME` becomes `NAME.1`, and a new `NAME` is opened.
    fn rotate(&mut self, keep: u32) -> io::Result<()> {
        let numbered = |i: u32| {
            let mut name = self.path.clone().into_os_string();
            name.push(format!(".{i}"));
            PathBuf::from(name)
        };
        match std::fs::remove_file(numbered(keep)) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
            _ => {}
        }
        for i in (1..keep).rev() {
            match std::fs::rename(numbered(i), numbered(i + 1)) {
                Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
                _ => {}
            }
        }
        std::fs::rename(&self.path, numbered(1))?;
        self.reopen()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pyfcgi-logfile-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("site.log")
    }

    fn numbered(path: &Path, i: u32) -> PathBuf {
        PathBuf::from(format!("{}.{i}", path.display()))
    }

    #[test]
    fn rotates_by_size_and_keeps_the_newest_files() {
        let path = scratch("size");
        let policy: RotatePolicy = "size=100,keep=2".parse().unwrap();
        let mut log = LogFile::open(&path, Some(policy)).unwrap();
        let line = [b'x'; 39];
        for i in 0..10u8 {
            let mut l = line.to_vec();
            l[0] = b'0' + i;
            l.push(b'\n');
            log.write_lines(&l).unwrap();
        }
        // 40-byte lines, at most 100 bytes a file: two lines per file, five files made, two old ones kept.
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(&path).lines().map(|l| &l[..1]).collect::<Vec<_>>(), ["8", "9"]);
        assert_eq!(
            read(&numbered(&path, 1)).lines().map(|l| &l[..1]).collect::<Vec<_>>(),
            ["6", "7"]
        );
        assert_eq!(
            read(&numbered(&path, 2)).lines().map(|l| &l[..1]).collect::<Vec<_>>(),
            ["4", "5"]
        );
        assert!(!numbered(&path, 3).exists());
    }

    #[test]
    fn a_line_larger_than_the_limit_still_goes_in_whole() {
        let path = scratch("big");
        let mut log = LogFile::open(&path, Some("size=10".parse().unwrap())).unwrap();
        log.write_lines(b"a line longer than ten bytes\n").unwrap();
        log.write_lines(b"another long line\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "another long line\n");
        assert_eq!(
            std::fs::read_to_string(numbered(&path, 1)).unwrap(),
            "a line longer than ten bytes\n"
        );
    }

    #[test]
    fn follows_its_path_after_a_rename_and_after_another_writer_rotated() {
        let path = scratch("follow");
        let mut log = LogFile::open(&path, None).unwrap();
        log.write_lines(b"one\n").unwrap();
        std::fs::rename(&path, numbered(&path, 9)).unwrap();
        log.reopen().unwrap();
        log.write_lines(b"two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two\n");
        assert_eq!(std::fs::read_to_string(numbered(&path, 9)).unwrap(), "one\n");
        // Without being told: the check a second later notices the path names another file.
        std::fs::rename(&path, numbered(&path, 8)).unwrap();
        log.followed = Instant::now() - FOLLOW_INTERVAL;
        log.write_lines(b"three\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
    }

    #[test]
    fn a_writer_that_finds_the_file_rotated_by_another_does_not_rotate_again() {
        let path = scratch("shared");
        std::fs::write(&path, "fifteen bytes!\n").unwrap();
        let policy: RotatePolicy = "size=20,keep=3".parse().unwrap();
        let mut a = LogFile::open(&path, Some(policy)).unwrap();
        let mut b = LogFile::open(&path, Some(policy)).unwrap();
        a.write_lines(b"from a\n").unwrap();
        b.write_lines(b"from b\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "from a\nfrom b\n");
        assert_eq!(std::fs::read_to_string(numbered(&path, 1)).unwrap(), "fifteen bytes!\n");
        assert!(!numbered(&path, 2).exists());
    }
}
