//! `PYFCGI_LOG_ROTATE`: when `WSGI_LOG` is rotated and how many old files are kept, as a value
//! (`size=50MB,daily,keep=7`) with its parser and the pure decision "is a rotation due". No I/O: the file side
//! (renaming, reopening, noticing another process's rotation) is in `file.rs`.

use std::fmt;
use std::str::FromStr;

/// What `PYFCGI_LOG_ROTATE` accepts, for the configuration error message.
pub const ROTATE_EXPECTED: &str = "comma-separated rotation rules: size=N[KB|MB|GB] (1 KB = 1024 bytes), daily \
     (after midnight UTC), keep=N (old files kept, default 7), e.g. \"size=50MB,daily,keep=7\"";

/// Old files kept when `keep=` is not given.
pub const DEFAULT_KEEP: u32 = 7;

/// See the module documentation. At least one of `max_bytes` and `daily` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotatePolicy {
    /// Rotate before a write would make the file larger than this.
    pub max_bytes: Option<u64>,
    /// Rotate at the first write of a new UTC day.
    pub daily: bool,
    /// Old files kept as `NAME.1` (newest) to `NAME.keep`; older ones are deleted.
    pub keep: u32,
}

/// Why a `PYFCGI_LOG_ROTATE` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidRotate(String);

fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor).filter(|n| *n > 0)
}

impl FromStr for RotatePolicy {
    type Err = InvalidRotate;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut policy = RotatePolicy {
            max_bytes: None,
            daily: false,
            keep: DEFAULT_KEEP,
        };
        for rule in text.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            let (key, value) = match rule.split_once('=') {
                Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim())),
                None => (rule.to_ascii_lowercase(), None),
            };
            match (key.as_str(), value) {
                ("size", Some(v)) => {
                    policy.max_bytes =
                        Some(parse_size(v).ok_or_else(|| InvalidRotate(format!("size {v:?} is not a size")))?);
                }
                ("daily", None) => policy.daily = true,
                ("keep", Some(v)) => {
                    policy.keep = v
                        .parse()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| InvalidRotate(format!("keep {v:?} is not a number of files (1 or more)")))?;
                }
                _ => return Err(InvalidRotate(format!("unknown rule {rule:?}"))),
            }
        }
        if policy.max_bytes.is_none() && !policy.daily {
            return Err(InvalidRotate("no size= or daily rule".into()));
        }
        Ok(policy)
    }
}

impl fmt::Display for RotatePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rules = Vec::new();
        if let Some(bytes) = self.max_bytes {
            rules.push(format!("size={bytes}"));
        }
        if self.daily {
            rules.push("daily".into());
        }
        rules.push(format!("keep={}", self.keep));
        f.write_str(&rules.join(","))
    }
}

/// Days since the Unix epoch (UTC) of a time in seconds since the epoch.
pub fn utc_day(unix_seconds: u64) -> u64 {
    unix_seconds / 86_400
}

impl RotatePolicy {
    /// Whether the file must be rotated before `incoming` more bytes go in: it holds `size` bytes and its
    /// content started on UTC day `file_day`; today is `today`. An empty file is never rotated.
    pub fn due(&self, size: u64, incoming: u64, file_day: u64, today: u64) -> bool {
        if size == 0 {
            return false;
        }
        let too_big = self.max_bytes.is_some_and(|max| size + incoming > max);
        too_big || (self.daily && today != file_day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let p: RotatePolicy = "size=50MB,daily,keep=3".parse().unwrap();
        assert_eq!(
            p,
            RotatePolicy {
                max_bytes: Some(50 << 20),
                daily: true,
                keep: 3
            }
        );
        let p: RotatePolicy = " Size = 10kb ".parse().unwrap();
        assert_eq!((p.max_bytes, p.daily, p.keep), (Some(10 << 10), false, DEFAULT_KEEP));
        let p: RotatePolicy = "daily".parse().unwrap();
        assert_eq!((p.max_bytes, p.daily), (None, true));
        assert_eq!("size=1000".parse::<RotatePolicy>().unwrap().max_bytes, Some(1000));
        assert_eq!("size=2G".parse::<RotatePolicy>().unwrap().max_bytes, Some(2 << 30));
    }

    #[test]
    fn refuses_what_it_cannot_mean() {
        for bad in [
            "",
            "keep=3",
            "size=",
            "size=0",
            "size=10TB",
            "size=abc",
            "weekly",
            "daily=1",
            "size=1MB,keep=0",
            "size=1MB,keep=x",
        ] {
            assert!(bad.parse::<RotatePolicy>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn display_round_trips() {
        for text in ["size=50MB,daily,keep=7", "daily,keep=2", "size=123"] {
            let p: RotatePolicy = text.parse().unwrap();
            assert_eq!(p.to_string().parse::<RotatePolicy>().unwrap(), p);
        }
    }

    #[test]
    fn rotation_is_due_by_size_or_by_day_never_for_an_empty_file() {
        let p: RotatePolicy = "size=100,daily".parse().unwrap();
        assert!(!p.due(50, 50, 10, 10));
        assert!(p.due(51, 50, 10, 10));
        assert!(p.due(1, 1, 10, 11));
        assert!(!p.due(0, 500, 9, 11));
        let size_only: RotatePolicy = "size=100".parse().unwrap();
        assert!(!size_only.due(10, 10, 1, 2));
        assert_eq!(utc_day(86_399), 0);
        assert_eq!(utc_day(86_400), 1);
    }
}
