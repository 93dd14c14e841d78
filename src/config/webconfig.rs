//! Reading `<appSettings>` out of a site's `web.config`, with wfastcgi's exact semantics.
//!
//! This module owns finding the file (case-insensitively, because IIS sites often have `Web.config`),
//! decoding it (UTF-8 with or without BOM, UTF-16, and the two single-byte encodings Windows editors
//! declare), and collecting every `<add key=.. value=..>` the way wfastcgi's `get_environment` does:
//! every `add` under every `appSettings` under every `configuration`, found by descendant search, so
//! entries inside `<location>` blocks count too. Keys are whitespace-stripped, values are kept verbatim,
//! a missing `value` is `""`, a later duplicate replaces the value but keeps the first position (Python
//! dict semantics). Like wfastcgi, `<clear>`, `<remove>`, `configSource=` and `file=` are ignored, and
//! parent, child and virtual-directory web.config files are never read. It does not decide what any key
//! means; that is [`super::Settings`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The file name wfastcgi opens; preferred when a case-sensitive file system holds several spellings.
const WFASTCGI_NAME: &str = "Web.config";
/// The spelling IIS Manager and most templates create.
const IIS_NAME: &str = "web.config";

/// Why a web.config could not be turned into [`AppSettings`].
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{} is not well-formed XML (line {line}, column {column}): {}",
        path.display(),
        without_position(reason)
    )]
    Xml {
        path: PathBuf,
        line: u32,
        column: u32,
        reason: roxmltree::Error,
    },
    #[error("{} cannot be decoded: {detail}; save it as UTF-8", path.display())]
    Encoding { path: PathBuf, detail: String },
}

/// roxmltree ends its messages with " at row:col", which the message already gives as line and column.
fn without_position(reason: &roxmltree::Error) -> String {
    let text = reason.to_string();
    let suffix = format!(" at {}", reason.pos());
    match text.strip_suffix(&suffix) {
        Some(head) => head.to_string(),
        None => text,
    }
}

/// The `<appSettings>` entries of one web.config, in wfastcgi's merge order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSettings {
    /// The file the entries came from, for provenance and messages.
    pub path: PathBuf,
    /// Unique keys in first-seen order, each with its last value.
    pub entries: Vec<(String, String)>,
}

impl AppSettings {
    /// Finds and loads the web.config in `dir`. `Ok(None)` when there is none, which wfastcgi treats
    /// as "no appSettings", not as an error.
    pub fn load_from_dir(dir: &Path) -> Result<Option<Self>, WebConfigError> {
        match find_web_config(dir)? {
            Some(path) => Self::load(&path).map(Some),
            None => Ok(None),
        }
    }

    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<Self, WebConfigError> {
        let bytes = fs::read(path).map_err(|source| WebConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path.to_path_buf(), &bytes)
    }

    /// Parses web.config content; `path` is only recorded and used in messages.
    pub fn parse(path: PathBuf, bytes: &[u8]) -> Result<Self, WebConfigError> {
        let text = match decode(bytes) {
            Ok(text) => text,
            Err(detail) => return Err(WebConfigError::Encoding { path, detail }),
        };
        let options = roxmltree::ParsingOptions {
            // minidom accepts a DOCTYPE, so refusing one would reject files wfastcgi reads;
            // roxmltree still guards against entity expansion attacks.
            allow_dtd: true,
            ..roxmltree::ParsingOptions::default()
        };
        let doc = match roxmltree::Document::parse_with_options(&text, options) {
            Ok(doc) => doc,
            Err(reason) => {
                let pos = reason.pos();
                return Err(WebConfigError::Xml {
                    path,
                    line: pos.row,
                    column: pos.col,
                    reason,
                });
            }
        };
        let entries = collect_entries(&doc);
        Ok(AppSettings { path, entries })
    }

    /// The value of `key`, matched exactly (wfastcgi reads `os.environ`, which is case-sensitive on Unix).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every entry whose key equals `key` ignoring case, in order. wfastcgi applies each web.config key
    /// whose `lower()` is `pythonpath`, so `PYTHONPATH` and `PythonPath` may both be present and both count.
    pub fn get_all_ignore_case<'a>(&'a self, key: &str) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let wanted = key.to_lowercase();
        self.entries
            .iter()
            .filter(move |(k, _)| k.to_lowercase() == wanted)
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The first entry whose key equals `key` ignoring case.
    pub fn get_ignore_case(&self, key: &str) -> Option<&str> {
        self.get_all_ignore_case(key).next().map(|(_, v)| v)
    }
}

/// Locates the web.config in `dir` whatever its letter case. `Ok(None)` if `dir` has none or does not exist.
pub fn find_web_config(dir: &Path) -> Result<Option<PathBuf>, WebConfigError> {
    // Probing the two usual spellings first finds the file on case-insensitive file systems (Windows)
    // without listing the directory, which the app pool identity may not be allowed to do.
    for name in [WFASTCGI_NAME, IIS_NAME] {
        let candidate = dir.join(name);
        if is_file(&candidate) {
            return Ok(Some(candidate));
        }
    }
    let listing = match fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(WebConfigError::Io {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut found: Vec<PathBuf> = Vec::new();
    for entry in listing {
        let entry = entry.map_err(|source| WebConfigError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let name = entry.file_name();
        let matches = name.to_str().is_some_and(|n| n.eq_ignore_ascii_case(IIS_NAME));
        if matches && is_file(&entry.path()) {
            found.push(entry.path());
        }
    }
    // read_dir order is unspecified; sorting keeps the choice stable when several spellings exist.
    found.sort();
    Ok(found.into_iter().next())
}

fn is_file(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file())
}

/// Mirrors `get_environment`: nested loops of descendant searches, so an `add` reachable through
/// several `configuration`/`appSettings` ancestors is visited once per ancestor, exactly as minidom's
/// `getElementsByTagName` does.
fn collect_entries(doc: &roxmltree::Document<'_>) -> Vec<(String, String)> {
    let mut entries: Vec<(String, String)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for config in doc.descendants().filter(|n| is_element(n, "configuration")) {
        for section in config
            .descendants()
            .filter(|n| n.id() != config.id() && is_element(n, "appSettings"))
        {
            for add in section
                .descendants()
                .filter(|n| n.id() != section.id() && is_element(n, "add"))
            {
                let raw_key = add.attribute("key").unwrap_or("");
                // wfastcgi tests the key before stripping it; a key that strips to "" would then make
                // os.environ.update raise, so such entries are dropped here instead of failing later.
                let key = raw_key.trim();
                if key.is_empty() {
                    continue;
                }
                let value = add.attribute("value").unwrap_or("").to_string();
                match index.get(key) {
                    Some(&i) => entries[i].1 = value,
                    None => {
                        index.insert(key.to_string(), entries.len());
                        entries.push((key.to_string(), value));
                    }
                }
            }
        }
    }
    entries
}

fn is_element(node: &roxmltree::Node<'_, '_>, name: &str) -> bool {
    node.is_element() && node.tag_name().name() == name
}

/// Turns raw file bytes into text, following the BOM, then the byte pattern of an undeclared UTF-16
/// document (as expat does), then the XML declaration for single-byte encodings.
fn decode(bytes: &[u8]) -> Result<Cow<'_, str>, String> {
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return utf8(rest);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        return utf16(rest, u16::from_le_bytes).map(Cow::Owned);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        return utf16(rest, u16::from_be_bytes).map(Cow::Owned);
    }
    match bytes {
        [a, 0, b, 0, ..] if *a != 0 && *b != 0 => return utf16(bytes, u16::from_le_bytes).map(Cow::Owned),
        [0, a, 0, b, ..] if *a != 0 && *b != 0 => return utf16(bytes, u16::from_be_bytes).map(Cow::Owned),
        _ => {}
    }
    match declared_encoding(bytes).map(|e| e.to_ascii_lowercase()) {
        Some(e) if matches!(e.as_str(), "iso-8859-1" | "latin-1" | "latin1" | "l1") => {
            Ok(Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect()))
        }
        Some(e) if matches!(e.as_str(), "windows-1252" | "cp1252") => {
            Ok(Cow::Owned(bytes.iter().map(|&b| cp1252(b)).collect()))
        }
        Some(e) if !matches!(e.as_str(), "utf-8" | "utf8" | "us-ascii" | "ascii") => {
            if bytes.is_ascii() {
                Ok(Cow::Borrowed(std::str::from_utf8(bytes).unwrap_or_default()))
            } else {
                Err(format!("the declared encoding \"{e}\" is not supported"))
            }
        }
        _ => utf8(bytes),
    }
}

fn utf8(bytes: &[u8]) -> Result<Cow<'_, str>, String> {
    std::str::from_utf8(bytes).map(Cow::Borrowed).map_err(|e| {
        let valid = &bytes[..e.valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        format!(
            "invalid UTF-8 at line {line} (byte offset {}), and no other encoding is declared",
            e.valid_up_to()
        )
    })
}

fn utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> Result<String, String> {
    if bytes.len() % 2 != 0 {
        return Err("UTF-16 content has an odd number of bytes".to_string());
    }
    let units = bytes.chunks_exact(2).map(|c| unit([c[0], c[1]]));
    char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .map_err(|e| format!("invalid UTF-16 (unpaired surrogate 0x{:04X})", e.unpaired_surrogate()))
}

/// The `encoding` pseudo-attribute of a leading `<?xml ...?>` declaration, which is always ASCII.
fn declared_encoding(bytes: &[u8]) -> Option<&str> {
    let rest = bytes.strip_prefix(b"<?xml")?;
    let end = rest.windows(2).position(|w| w == b"?>")?;
    let decl = std::str::from_utf8(&rest[..end]).ok()?;
    let after = &decl[decl.find("encoding")? + "encoding".len()..];
    let after = after.trim_start().strip_prefix('=')?.trim_start();
    let quote = after.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let body = &after[1..];
    Some(&body[..body.find(quote)?])
}

fn cp1252(b: u8) -> char {
    const HIGH: [u16; 32] = [
        0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D,
        0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A,
        0x0153, 0x009D, 0x017E, 0x0178,
    ];
    match b {
        0x80..=0x9F => char::from_u32(u32::from(HIGH[usize::from(b - 0x80)])).unwrap_or('\u{FFFD}'),
        _ => char::from(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> AppSettings {
        match AppSettings::parse(PathBuf::from("site/web.config"), text.as_bytes()) {
            Ok(s) => s,
            Err(e) => panic!("parse failed: {e}"),
        }
    }

    fn pairs(s: &AppSettings) -> Vec<(&str, &str)> {
        s.entries.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    const TYPICAL: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <system.webServer>
    <handlers><add name="Python FastCGI" path="*" verb="*" modules="FastCgiModule" /></handlers>
  </system.webServer>
  <appSettings>
    <add key="WSGI_HANDLER" value="app.app" />
    <add key="PYTHONPATH" value="C:\inetpub\app" />
  </appSettings>
</configuration>"#;

    #[test]
    fn typical_file_yields_only_appsettings_adds() {
        let s = parse(TYPICAL);
        assert_eq!(
            pairs(&s),
            vec![("WSGI_HANDLER", "app.app"), ("PYTHONPATH", r"C:\inetpub\app")]
        );
        assert_eq!(s.get("WSGI_HANDLER"), Some("app.app"));
        assert_eq!(s.get("wsgi_handler"), None);
        assert_eq!(s.get_ignore_case("PythonPath"), Some(r"C:\inetpub\app"));
    }

    #[test]
    fn location_blocks_and_several_sections_all_count() {
        let s = parse(
            r#"<configuration>
  <appSettings><add key="A" value="1"/></appSettings>
  <location path="sub"><appSettings><add key="B" value="2"/></appSettings></location>
  <appSettings><add key="C" value="3"/></appSettings>
</configuration>"#,
        );
        assert_eq!(pairs(&s), vec![("A", "1"), ("B", "2"), ("C", "3")]);
    }

    #[test]
    fn keys_stripped_values_verbatim_missing_value_empty() {
        let s = parse(
            r#"<configuration><appSettings>
  <add key="  SPACED  " value="  kept  "/>
  <add key="NOVALUE"/>
  <add value="no key"/>
  <add key="   " value="blank key"/>
</appSettings></configuration>"#,
        );
        assert_eq!(pairs(&s), vec![("SPACED", "  kept  "), ("NOVALUE", "")]);
    }

    #[test]
    fn later_duplicate_wins_but_keeps_first_position() {
        let s = parse(
            r#"<configuration><appSettings>
  <add key="A" value="1"/><add key="B" value="2"/><add key=" A" value="3"/>
</appSettings></configuration>"#,
        );
        assert_eq!(pairs(&s), vec![("A", "3"), ("B", "2")]);
    }

    #[test]
    fn clear_remove_and_external_files_are_ignored() {
        let s = parse(
            r#"<configuration>
  <appSettings file="other.config"><add key="A" value="1"/><clear/><remove key="A"/></appSettings>
  <appSettings configSource="x.config"/>
</configuration>"#,
        );
        assert_eq!(pairs(&s), vec![("A", "1")]);
    }

    #[test]
    fn appsettings_outside_configuration_is_ignored() {
        let s = parse(r#"<root><appSettings><add key="A" value="1"/></appSettings></root>"#);
        assert!(s.entries.is_empty());
    }

    #[test]
    fn entities_and_default_namespace_parse() {
        let s = parse(
            r#"<configuration xmlns="http://schemas.microsoft.com/.NetConfiguration/v2.0">
  <appSettings><add key="Q" value="a&amp;b &quot;c&quot;"/></appSettings></configuration>"#,
        );
        assert_eq!(pairs(&s), vec![("Q", "a&b \"c\"")]);
    }

    #[test]
    fn bom_prefixed_utf8_parses() {
        let mut bytes = vec![0xEF, 0xBB, 0xBF];
        bytes.extend_from_slice(TYPICAL.as_bytes());
        let s = AppSettings::parse(PathBuf::from("w"), &bytes).expect("BOM file parses");
        assert_eq!(s.get("WSGI_HANDLER"), Some("app.app"));
    }

    fn utf16_bytes(text: &str, bom: bool, big_endian: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let units = bom.then_some(0xFEFF_u16).into_iter().chain(text.encode_utf16());
        for u in units {
            out.extend_from_slice(&if big_endian { u.to_be_bytes() } else { u.to_le_bytes() });
        }
        out
    }

    #[test]
    fn utf16_with_and_without_bom_parses() {
        let text = TYPICAL.replace("utf-8", "utf-16") + "<!-- é -->";
        for (bom, be) in [(true, false), (true, true), (false, false), (false, true)] {
            let bytes = utf16_bytes(&text, bom, be);
            let s = AppSettings::parse(PathBuf::from("w"), &bytes).unwrap_or_else(|e| panic!("bom={bom} be={be}: {e}"));
            assert_eq!(s.get("WSGI_HANDLER"), Some("app.app"));
        }
    }

    #[test]
    fn declared_single_byte_encodings_decode() {
        let head = br#"<?xml version="1.0" encoding="windows-1252"?><configuration><appSettings><add key="K" value=""#;
        let mut bytes = head.to_vec();
        bytes.extend_from_slice(&[0x80, 0xE9]);
        bytes.extend_from_slice(br#""/></appSettings></configuration>"#);
        let s = AppSettings::parse(PathBuf::from("w"), &bytes).expect("cp1252 parses");
        assert_eq!(s.get("K"), Some("€é"));

        let mut bytes =
            br#"<?xml version='1.0' encoding='ISO-8859-1'?><configuration><appSettings><add key="K" value=""#.to_vec();
        bytes.push(0xE9);
        bytes.extend_from_slice(br#""/></appSettings></configuration>"#);
        let s = AppSettings::parse(PathBuf::from("w"), &bytes).expect("latin-1 parses");
        assert_eq!(s.get("K"), Some("é"));
    }

    #[test]
    fn undeclared_non_utf8_is_a_clear_error() {
        let bytes = b"<configuration>\n<appSettings><add key=\"K\" value=\"\xE9\"/></appSettings></configuration>";
        let err = AppSettings::parse(PathBuf::from("C:/site/web.config"), bytes).expect_err("ANSI bytes rejected");
        let msg = err.to_string();
        assert!(msg.contains("C:/site/web.config"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
        assert!(msg.contains("UTF-8"), "{msg}");
    }

    #[test]
    fn malformed_xml_reports_path_line_and_column() {
        let err = AppSettings::parse(
            PathBuf::from("/srv/site/web.config"),
            b"<configuration>\n  <appSettings>\n    <add key=\"A\" value=\"1\">\n  </appSettings>\n</configuration>",
        )
        .expect_err("mismatched tags rejected");
        match &err {
            WebConfigError::Xml { line, .. } => assert_eq!(*line, 4),
            other => panic!("unexpected error {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("/srv/site/web.config"), "{msg}");
        assert!(msg.contains("line 4, column 3"), "{msg}");
        assert!(msg.ends_with("expected 'add' tag, not 'appSettings'"), "{msg}");
    }

    #[test]
    fn case_insensitive_lookup_returns_every_spelling() {
        let s = parse(
            r#"<configuration><appSettings>
  <add key="PYTHONPATH" value="a"/><add key="PythonPath" value="b"/><add key="OTHER" value="c"/>
</appSettings></configuration>"#,
        );
        let all: Vec<_> = s.get_all_ignore_case("pythonpath").collect();
        assert_eq!(all, vec![("PYTHONPATH", "a"), ("PythonPath", "b")]);
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pyfcgi-webconfig-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn finds_any_letter_case_and_loads() {
        for name in ["Web.config", "web.config", "WEB.CONFIG", "wEb.CoNfIg"] {
            let dir = temp_dir(&name.replace('.', "_"));
            fs::write(dir.join(name), TYPICAL).expect("write");
            let found = find_web_config(&dir).expect("lookup").expect("found");
            assert!(found.file_name().is_some_and(|n| n.eq_ignore_ascii_case("web.config")));
            let s = AppSettings::load_from_dir(&dir).expect("load").expect("present");
            assert_eq!(s.get("WSGI_HANDLER"), Some("app.app"));
            let _ = fs::remove_dir_all(&dir);
        }
    }

    #[test]
    fn missing_file_or_directory_is_none() {
        let dir = temp_dir("missing");
        assert!(AppSettings::load_from_dir(&dir).expect("ok").is_none());
        fs::create_dir(dir.join("web.config")).expect("dir named web.config");
        assert!(find_web_config(&dir).expect("ok").is_none());
        assert!(find_web_config(&dir.join("nope")).expect("ok").is_none());
        let _ = fs::remove_dir_all(&dir);
    }
}
