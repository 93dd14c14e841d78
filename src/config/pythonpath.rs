//! wfastcgi's treatment of a web.config `PYTHONPATH` value: `%NAME%` expansion and list splitting.
//!
//! This module owns turning one raw value into the ordered list of entries to append to `sys.path`.
//! It does not decide where the value comes from, where the entries go in `sys.path`, or whether a
//! directory exists. wfastcgi does `re.sub('%(\w+?)%', os.getenv(name, ''), value).split(';')` and drops
//! empty parts without stripping any; that is reproduced exactly. On Unix a `:`-separated list is also
//! accepted (a web.config may be shared with a Linux deployment), except where the colon is a Windows
//! drive letter's.

/// How a path list is separated beyond wfastcgi's `;`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathListStyle {
    /// Only `;` separates, exactly as wfastcgi.
    Windows,
    /// `;` and also `:`, except a drive colon (`C:\x`, `C:/x`, a bare `C:`).
    Unix,
}

impl PathListStyle {
    /// The style of the platform this binary was built for.
    pub fn native() -> Self {
        if cfg!(windows) {
            PathListStyle::Windows
        } else {
            PathListStyle::Unix
        }
    }
}

/// Expands then splits a `PYTHONPATH` value; `lookup` answers `%NAME%` (unknown names become `""`).
pub fn process(value: &str, lookup: &dyn Fn(&str) -> Option<String>, style: PathListStyle) -> Vec<String> {
    split_path_list(&expand_vars(value, lookup), style)
}

/// Replaces every `%word%` with `lookup(word)` or `""`, scanning left to right like Python's `re.sub`:
/// a `%` that does not open a `%word%` match (as in `%%`, `100%`, `%a b%`) is kept and scanning resumes
/// at the next character, and replaced text is never rescanned.
pub fn expand_vars(value: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let name_len = after
            .char_indices()
            .find(|&(_, c)| !is_word_char(c))
            .map_or(after.len(), |(i, _)| i);
        if name_len > 0 && after[name_len..].starts_with('%') {
            out.push_str(&lookup(&after[..name_len]).unwrap_or_default());
            rest = &after[name_len + 1..];
        } else {
            out.push('%');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Python's `\w` for `str` patterns: Unicode letters and digits, and `_`.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Splits on `;` (and, for [`PathListStyle::Unix`], on non-drive `:`), dropping empty parts and
/// stripping nothing.
pub fn split_path_list(value: &str, style: PathListStyle) -> Vec<String> {
    let mut out = Vec::new();
    for part in value.split(';').filter(|p| !p.is_empty()) {
        match style {
            PathListStyle::Windows => out.push(part.to_string()),
            PathListStyle::Unix => out.extend(
                split_unix_part(part)
                    .into_iter()
                    .filter(|p| !p.is_empty())
                    .map(str::to_string),
            ),
        }
    }
    out
}

/// A single letter followed by `:` and then `\`, `/` or the end is read as a drive, not as the
/// one-letter relative directory it could also be on Unix; that reading is the one a shared
/// web.config means.
fn split_unix_part(part: &str) -> Vec<&str> {
    let bytes = part.as_bytes();
    let mut pieces = Vec::new();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b != b':' {
            continue;
        }
        let is_drive = i == start + 1
            && bytes[start].is_ascii_alphabetic()
            && matches!(bytes.get(i + 1), None | Some(b'\\') | Some(b'/'));
        if !is_drive {
            pieces.push(&part[start..i]);
            start = i + 1;
        }
    }
    pieces.push(&part[start..]);
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "SITE" => Some(r"C:\inetpub\site".to_string()),
            "LIB" => Some("lib".to_string()),
            "PCT" => Some("%SITE%".to_string()),
            "é" => Some("unicode".to_string()),
            _ => None,
        }
    }

    #[test]
    fn expands_known_and_blanks_unknown() {
        assert_eq!(expand_vars(r"%SITE%\app", &vars), r"C:\inetpub\site\app");
        assert_eq!(expand_vars("%NOPE%/x", &vars), "/x");
        assert_eq!(expand_vars("a%LIB%b%LIB%c", &vars), "alibblibc");
        assert_eq!(expand_vars("%é%", &vars), "unicode");
    }

    #[test]
    fn only_percent_word_percent_is_replaced() {
        assert_eq!(expand_vars("%%", &vars), "%%");
        assert_eq!(expand_vars("100%", &vars), "100%");
        assert_eq!(expand_vars("%", &vars), "%");
        assert_eq!(expand_vars("%%LIB%", &vars), "%lib");
        assert_eq!(expand_vars("%LIB%%", &vars), "lib%");
        assert_eq!(expand_vars("%a b%", &vars), "%a b%");
        assert_eq!(expand_vars("%a-b%LIB%", &vars), "%a-blib");
        assert_eq!(expand_vars("%LIB", &vars), "%LIB");
    }

    #[test]
    fn replacement_text_is_not_rescanned() {
        assert_eq!(expand_vars("%PCT%", &vars), "%SITE%");
    }

    #[test]
    fn semicolons_split_and_empty_parts_drop_without_stripping() {
        assert_eq!(
            split_path_list(r"C:\a;;C:\b; ;", PathListStyle::Windows),
            vec![r"C:\a", r"C:\b", " "]
        );
        assert!(split_path_list("", PathListStyle::Windows).is_empty());
        assert!(split_path_list(";;", PathListStyle::Unix).is_empty());
    }

    #[test]
    fn windows_style_never_splits_on_colon() {
        assert_eq!(split_path_list("/a:/b", PathListStyle::Windows), vec!["/a:/b"]);
    }

    #[test]
    fn unix_style_splits_on_colon_but_not_drives() {
        let unix = PathListStyle::Unix;
        assert_eq!(split_path_list("/a:/b::/c", unix), vec!["/a", "/b", "/c"]);
        assert_eq!(split_path_list(r"C:\x;D:/y", unix), vec![r"C:\x", "D:/y"]);
        assert_eq!(split_path_list(r"/srv/app:C:\x", unix), vec!["/srv/app", r"C:\x"]);
        assert_eq!(split_path_list("C:", unix), vec!["C:"]);
        assert_eq!(split_path_list("ab:/c", unix), vec!["ab", "/c"]);
        assert_eq!(split_path_list("1:/c", unix), vec!["1", "/c"]);
        assert_eq!(split_path_list("C:rel", unix), vec!["C", "rel"]);
    }

    #[test]
    fn process_expands_before_splitting() {
        let lookup = |name: &str| match name {
            "ROOT" => Some(r"C:\site".to_string()),
            "EXTRA" => Some(r"C:\one;C:\two".to_string()),
            _ => None,
        };
        assert_eq!(
            process(r"%ROOT%;%EXTRA%;%MISSING%", &lookup, PathListStyle::Windows),
            vec![r"C:\site", r"C:\one", r"C:\two"]
        );
    }
}
