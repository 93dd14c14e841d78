//! What `pyfcgi doctor` found, and its two renderings: text for an admin (each finding with the file and line,
//! what happens because of it, and the fix) and JSON for scripts. The JSON is written here by hand (a string
//! escaper and a fixed shape) rather than through serde, which the crate does not otherwise need.

use std::fmt::Write as _;
use std::path::PathBuf;

/// How bad a finding is: `Error` makes requests fail; `Warning` makes the site misbehave or slow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Stable identifier, e.g. `script-processor-unmatched` (scripts match on it; docs/iis.md lists them).
    pub id: &'static str,
    pub severity: Severity,
    /// The file and line to change (or where the inherited value comes from).
    pub file: Option<PathBuf>,
    pub line: Option<u32>,
    /// What is wrong, naming the values.
    pub problem: String,
    /// What happens because of it (the error page or behaviour the admin sees).
    pub effect: String,
    /// The appcmd command or the XML to change.
    pub fix: String,
}

/// An application the doctor looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// `Default Web Site/app`, or the folder when it belongs to no site in applicationHost.config.
    pub name: String,
    pub physical: String,
    pub pool: Option<String>,
    /// The pool identity, for `pyfcgi check --as`.
    pub identity: Option<String>,
    /// Why it was not examined further (no FastCGI handler), if so.
    pub skipped: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Every configuration file read, in order.
    pub files_read: Vec<PathBuf>,
    pub checked: Vec<Checked>,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// Adds a finding unless the same one (id, file, line) is already there: several applications share
    /// applicationHost.config, and its problems are reported once.
    pub fn push(&mut self, finding: Finding) {
        let same = |f: &Finding| f.id == finding.id && f.file == finding.file && f.line == finding.line;
        if !self.findings.iter().any(same) {
            self.findings.push(finding);
        }
    }

    pub fn to_text(&self) -> String {
        let mut out = String::from("pyfcgi doctor (read-only: nothing was changed)\nFiles read:\n");
        for file in &self.files_read {
            let _ = writeln!(out, "  {}", file.display());
        }
        for app in &self.checked {
            let _ = write!(out, "Application {} ({})", app.name, app.physical);
            if let (Some(pool), Some(identity)) = (&app.pool, &app.identity) {
                let _ = write!(out, ", pool {pool} running as {identity}");
            }
            match &app.skipped {
                Some(why) => {
                    let _ = writeln!(out, ": skipped, {why}");
                }
                None => out.push('\n'),
            }
        }
        for finding in &self.findings {
            let _ = write!(out, "\n{}[{}]", finding.severity.as_str(), finding.id);
            if let Some(file) = &finding.file {
                let _ = write!(out, " {}", file.display());
                if let Some(line) = finding.line {
                    let _ = write!(out, ":{line}");
                }
            }
            let _ = writeln!(out, "\n  {}", finding.problem);
            let _ = writeln!(out, "  What happens: {}", finding.effect);
            let fix = finding.fix.replace('\n', "\n    ");
            let _ = writeln!(out, "  Fix: {fix}");
        }
        let errors = self.findings.iter().filter(|f| f.severity == Severity::Error).count();
        let _ = writeln!(
            out,
            "\n{} finding(s): {errors} error(s), {} warning(s).",
            self.findings.len(),
            self.findings.len() - errors
        );
        let identities: Vec<&str> = self
            .checked
            .iter()
            .filter(|c| c.skipped.is_none())
            .filter_map(|c| c.identity.as_deref())
            .collect();
        if let Some(identity) = identities.first() {
            let _ = writeln!(
                out,
                "File permissions are not part of this check: run `pyfcgi check --as \"{identity}\"`."
            );
        }
        out
    }

    pub fn to_json(&self) -> String {
        let mut out = String::from("{\"files_read\":[");
        let files: Vec<String> = self
            .files_read
            .iter()
            .map(|f| json_str(&f.display().to_string()))
            .collect();
        out.push_str(&files.join(","));
        out.push_str("],\"applications\":[");
        let apps: Vec<String> = self
            .checked
            .iter()
            .map(|a| {
                format!(
                    "{{\"name\":{},\"physical_path\":{},\"pool\":{},\"identity\":{},\"skipped\":{}}}",
                    json_str(&a.name),
                    json_str(&a.physical),
                    json_opt(a.pool.as_deref()),
                    json_opt(a.identity.as_deref()),
                    json_opt(a.skipped.as_deref())
                )
            })
            .collect();
        out.push_str(&apps.join(","));
        out.push_str("],\"findings\":[");
        let findings: Vec<String> = self
            .findings
            .iter()
            .map(|f| {
                format!(
                    "{{\"id\":{},\"severity\":{},\"file\":{},\"line\":{},\"problem\":{},\"effect\":{},\"fix\":{}}}",
                    json_str(f.id),
                    json_str(f.severity.as_str()),
                    json_opt(f.file.as_ref().map(|p| p.display().to_string()).as_deref()),
                    f.line.map(|l| l.to_string()).unwrap_or_else(|| "null".into()),
                    json_str(&f.problem),
                    json_str(&f.effect),
                    json_str(&f.fix)
                )
            })
            .collect();
        out.push_str(&findings.join(","));
        out.push_str("]}\n");
        out
    }
}

fn json_opt(value: Option<&str>) -> String {
    value.map(json_str).unwrap_or_else(|| "null".into())
}

/// A JSON string literal (RFC 8259: `"` and `\` escaped, control characters as `\u00XX`).
pub fn json_str(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_escape_what_json_requires() {
        assert_eq!(json_str("a\"b\\c\nd\u{1}é"), "\"a\\\"b\\\\c\\nd\\u0001é\"");
    }

    #[test]
    fn the_same_finding_is_reported_once() {
        let finding = Finding {
            id: "x",
            severity: Severity::Warning,
            file: Some("f".into()),
            line: Some(3),
            problem: "p".into(),
            effect: "e".into(),
            fix: "f".into(),
        };
        let mut report = Report::default();
        report.push(finding.clone());
        report.push(finding.clone());
        report.push(Finding {
            line: Some(4),
            ..finding
        });
        assert_eq!(report.findings.len(), 2);
        assert!(report
            .to_text()
            .contains("warning[x] f:3\n  p\n  What happens: e\n  Fix: f\n"));
    }
}
