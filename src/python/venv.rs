//! Finding the virtual environment an embedded interpreter should use, without Python: an explicit `--venv` /
//! `PYFCGI_VENV`, a `pyvenv.cfg` beside the executable or one directory up (pip installs the binary into the
//! venv's `bin/` or `Scripts\`), or the `VIRTUAL_ENV` of an activated shell. Also reads `pyvenv.cfg` so a venv
//! made for another Python version is reported clearly instead of failing on the first import.

use std::fs;
use std::path::{Path, PathBuf};

/// A virtual environment and what its `pyvenv.cfg` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Venv {
    pub root: PathBuf,
    /// How it was found, for `pyfcgi check` and the start-up log.
    pub found_by: &'static str,
    /// `home`: the base interpreter's directory.
    pub home: Option<String>,
    /// `version` or `version_info` (e.g. `3.11.7`).
    pub version: Option<String>,
}

impl Venv {
    /// The venv's interpreter path, which CPython's path discovery uses to find `pyvenv.cfg`.
    pub fn python_executable(&self) -> PathBuf {
        if cfg!(windows) {
            self.root.join("Scripts").join("python.exe")
        } else {
            self.root.join("bin").join("python")
        }
    }

    /// `major.minor` of the venv's Python, if `pyvenv.cfg` says.
    pub fn minor_version(&self) -> Option<String> {
        let version = self.version.as_deref()?;
        let mut parts = version.split('.');
        Some(format!("{}.{}", parts.next()?, parts.next()?))
    }
}

/// Reads a `pyvenv.cfg` (`key = value` lines).
fn read_cfg(root: &Path, found_by: &'static str) -> Option<Venv> {
    let text = fs::read_to_string(root.join("pyvenv.cfg")).ok()?;
    let mut venv = Venv {
        root: root.to_path_buf(),
        found_by,
        home: None,
        version: None,
    };
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim().to_owned();
        match key.trim() {
            "home" => venv.home = Some(value),
            "version" | "version_info" => venv.version = Some(value),
            _ => {}
        }
    }
    Some(venv)
}

/// Finds the venv to use, in order of precedence.
pub fn find(explicit: Option<&Path>, exe: Option<&Path>, virtual_env: Option<&Path>) -> Option<Venv> {
    if let Some(dir) = explicit {
        return read_cfg(dir, "--venv / PYFCGI_VENV").or_else(|| {
            // An explicit path without pyvenv.cfg is still what the admin asked for; CPython will say more.
            Some(Venv {
                root: dir.to_path_buf(),
                found_by: "--venv / PYFCGI_VENV",
                home: None,
                version: None,
            })
        });
    }
    if let Some(exe_dir) = exe.and_then(Path::parent) {
        for dir in [Some(exe_dir), exe_dir.parent()].into_iter().flatten() {
            if let Some(venv) = read_cfg(dir, "pyvenv.cfg next to the executable") {
                return Some(venv);
            }
        }
    }
    virtual_env.and_then(|dir| read_cfg(dir, "VIRTUAL_ENV"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make_venv(name: &str, version: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("pyfcgi-venv-{}-{name}", std::process::id()));
        fs::create_dir_all(root.join("bin")).unwrap();
        fs::write(
            root.join("pyvenv.cfg"),
            format!("home = /usr/local/bin\ninclude-system-site-packages = false\nversion = {version}\n"),
        )
        .unwrap();
        root
    }

    #[test]
    fn finds_venv_above_the_executable() {
        let root = make_venv("above", "3.11.7");
        let venv = find(None, Some(&root.join("bin").join("pyfcgi")), None).unwrap();
        assert_eq!(venv.root, root);
        assert_eq!(venv.home.as_deref(), Some("/usr/local/bin"));
        assert_eq!(venv.minor_version().as_deref(), Some("3.11"));
        assert!(venv.python_executable().ends_with(if cfg!(windows) {
            "Scripts/python.exe"
        } else {
            "bin/python"
        }));
    }

    #[test]
    fn explicit_wins_over_executable_and_virtual_env() {
        let a = make_venv("explicit-a", "3.12.1");
        let b = make_venv("explicit-b", "3.11.7");
        let venv = find(Some(&a), Some(&b.join("bin").join("pyfcgi")), Some(&b)).unwrap();
        assert_eq!(venv.root, a);
        assert_eq!(venv.found_by, "--venv / PYFCGI_VENV");
    }

    #[test]
    fn virtual_env_is_the_last_resort() {
        let root = make_venv("virtualenv", "3.9.18");
        let elsewhere = std::env::temp_dir().join("no-venv-here").join("pyfcgi");
        let venv = find(None, Some(&elsewhere), Some(&root)).unwrap();
        assert_eq!(venv.found_by, "VIRTUAL_ENV");
        assert_eq!(find(None, Some(&elsewhere), None), None);
    }
}
