//! IIS configuration files as owned element trees that remember their line numbers, so a finding can say
//! "web.config line 12". roxmltree parses (it gives each node's position); the tree is copied out so the
//! documents of applicationHost.config and every web.config can be held together without borrowing the text.
//! Decoding covers what IIS itself accepts: UTF-8 with or without a byte-order mark, and UTF-16 with one.

use std::path::{Path, PathBuf};

/// One XML element: name, attributes in document order, child elements, and the line its start tag is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub line: u32,
}

impl Element {
    /// The attribute `name` (IIS attribute names are case-sensitive, as XML is).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Child elements named `name`, in order.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The descendant reached by following `path` (`system.webServer/handlers`), first match at each step.
    pub fn descend(&self, path: &str) -> Option<&Element> {
        path.split('/').try_fold(self, |element, step| element.child(step))
    }
}

/// A parsed configuration file.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    /// The path as the user or IIS names it (shown in findings).
    pub path: PathBuf,
    /// The `<configuration>` element.
    pub root: Element,
}

/// Why a configuration file could not be used. IIS answers a file it cannot parse with HTTP 500.19.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} line {line}: not well-formed XML: {reason}", path.display())]
    Xml { path: PathBuf, line: u32, reason: String },
    #[error("{} cannot be decoded: {detail}", path.display())]
    Encoding { path: PathBuf, detail: String },
    #[error("{}: the root element is <{found}>, not <configuration>", path.display())]
    NotConfiguration { path: PathBuf, found: String },
}

impl LoadError {
    /// The line the problem is on, when there is one.
    pub fn line(&self) -> Option<u32> {
        match self {
            LoadError::Xml { line, .. } => Some(*line),
            _ => None,
        }
    }
}

impl ConfigFile {
    /// Reads and parses `path`; `shown` is the name used in messages (the Windows form of the path).
    pub fn load(path: &Path, shown: PathBuf) -> Result<Self, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
            path: shown.clone(),
            source,
        })?;
        Self::parse(shown, &bytes)
    }

    pub fn parse(path: PathBuf, bytes: &[u8]) -> Result<Self, LoadError> {
        let text = decode(bytes).map_err(|detail| LoadError::Encoding {
            path: path.clone(),
            detail,
        })?;
        let options = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..roxmltree::ParsingOptions::default()
        };
        let doc = roxmltree::Document::parse_with_options(&text, options).map_err(|reason| LoadError::Xml {
            path: path.clone(),
            line: reason.pos().row,
            reason: reason.to_string(),
        })?;
        let root = copy(&doc, doc.root_element());
        if root.name != "configuration" {
            return Err(LoadError::NotConfiguration { path, found: root.name });
        }
        Ok(ConfigFile { path, root })
    }
}

fn copy(doc: &roxmltree::Document<'_>, node: roxmltree::Node<'_, '_>) -> Element {
    Element {
        name: node.tag_name().name().to_owned(),
        attrs: node
            .attributes()
            .map(|a| (a.name().to_owned(), a.value().to_owned()))
            .collect(),
        children: node
            .children()
            .filter(|c| c.is_element())
            .map(|c| copy(doc, c))
            .collect(),
        line: doc.text_pos_at(node.range().start).row,
    }
}

fn decode(bytes: &[u8]) -> Result<String, String> {
    let utf16 = |rest: &[u8], unit: fn([u8; 2]) -> u16| {
        if rest.len() % 2 != 0 {
            return Err("odd number of bytes for UTF-16".to_owned());
        }
        let units: Vec<u16> = rest.chunks_exact(2).map(|c| unit([c[0], c[1]])).collect();
        String::from_utf16(&units).map_err(|e| e.to_string())
    };
    match bytes {
        [0xEF, 0xBB, 0xBF, rest @ ..] => String::from_utf8(rest.to_vec()).map_err(|e| e.to_string()),
        [0xFF, 0xFE, rest @ ..] => utf16(rest, u16::from_le_bytes),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, u16::from_be_bytes),
        _ => String::from_utf8(bytes.to_vec()).map_err(|e| format!("{e}; save it as UTF-8")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_attributes_are_kept() {
        let text = "\u{feff}<?xml version=\"1.0\"?>\n<configuration>\n  <system.webServer>\n    <handlers>\n      <add name=\"a\" path=\"*\"/>\n    </handlers>\n  </system.webServer>\n</configuration>\n";
        let file = ConfigFile::parse("web.config".into(), text.as_bytes()).unwrap();
        let add = file.root.descend("system.webServer/handlers/add").unwrap();
        assert_eq!(
            (add.line, add.attr("name"), add.attr("path")),
            (5, Some("a"), Some("*"))
        );
        assert_eq!(file.root.line, 2);
    }

    #[test]
    fn utf16_with_bom_and_errors_with_lines() {
        let mut bytes = vec![0xFF, 0xFE];
        for unit in "<configuration><x/></configuration>".encode_utf16() {
            bytes.extend(unit.to_le_bytes());
        }
        assert!(ConfigFile::parse("a".into(), &bytes).unwrap().root.child("x").is_some());
        let err = ConfigFile::parse("b".into(), b"<configuration>\n<a>\n</configuration>").unwrap_err();
        assert_eq!(err.line(), Some(3));
        assert!(matches!(
            ConfigFile::parse("c".into(), b"<html/>"),
            Err(LoadError::NotConfiguration { .. })
        ));
    }
}
