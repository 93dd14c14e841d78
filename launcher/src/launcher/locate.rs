//! Where the launcher looks for the Python installation, on every platform: one search order, with the file
//! system, the environment and the platform's "does this folder hold a usable Python library?" passed in, so
//! the order and its messages are tested without either.
//!
//! First match wins:
//! 1. the venv given by `--venv DIR` or `PYFCGI_VENV` (its `pyvenv.cfg` `home`);
//! 2. the executable's own folder, when it is a Python installation and not a venv (pyfcgi copied next to
//!    `python.exe` / `python3.X`);
//! 3. a `pyvenv.cfg` next to the executable or one folder up (pip's `Scripts\` / `bin/` layout): its `home`;
//! 4. `PYFCGI_PYTHON_HOME`, then `PYTHONHOME` (an installation's folder: on Windows the one holding `python.exe`,
//!    elsewhere its prefix, whose `bin/` holds `python3.X`);
//! 5. the venv in `VIRTUAL_ENV` (an activated shell): its `home`;
//! 6. each folder of `PATH` that holds the interpreter.
//!
//! Steps 1 and 3–5 decide when they apply: a venv whose `home` lacks the library is an error, not a reason to pick
//! some other Python that CPython would then pair with the venv's packages. Only the `PATH` search goes on
//! looking (and reports the first Python it found but could not use). A venv made with another minor version is
//! refused before anything is loaded.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The Python minor version this build is for, e.g. `3.11` (set by build.rs).
pub const PYTHON_VERSION: &str = env!("PYFCGI_BUILD_PYTHON_VERSION");

/// What differs between platforms in the search and its messages.
pub struct Platform {
    /// The shared library file, e.g. `python311.dll` or `libpython3.11.so.1.0`.
    pub library: String,
    /// The interpreter in a Python folder, e.g. `python.exe` or `python3.11`.
    pub interpreter: String,
    /// The launcher's own file name, e.g. `pyfcgi.exe`.
    pub exe: &'static str,
    /// What the launcher needs beside itself, for messages (`pyfcgi.exe and pyfcgi_core.dll`).
    pub files: &'static str,
    /// A venv's folder of executables (`Scripts` / `bin`).
    pub scripts: &'static str,
    /// `PATH`'s separator.
    pub path_separator: char,
    /// The interpreter folder of an installation named by `PYFCGI_PYTHON_HOME` / `PYTHONHOME`.
    pub home_of_prefix: fn(&Path) -> PathBuf,
    /// The library sits in the interpreter's folder (Windows), so its absence there is the message.
    pub library_beside_interpreter: bool,
}

impl Platform {
    /// Windows: `python311.dll` next to `python.exe` in the installation folder.
    pub fn windows(version: &str) -> Self {
        Self {
            library: format!("python{}.dll", version.replace('.', "")),
            interpreter: "python.exe".into(),
            exe: "pyfcgi.exe",
            files: "pyfcgi.exe and pyfcgi_core.dll",
            scripts: "Scripts",
            path_separator: ';',
            home_of_prefix: Path::to_path_buf,
            library_beside_interpreter: true,
        }
    }

    /// Linux and other Unix: `libpython3.11.so.1.0`, `bin/python3.11` under the prefix.
    pub fn unix(version: &str) -> Self {
        Self {
            library: format!("libpython{version}.so.1.0"),
            interpreter: format!("python{version}"),
            exe: "pyfcgi",
            files: "pyfcgi and libpyfcgi_core.so",
            scripts: "bin",
            path_separator: ':',
            home_of_prefix: |prefix| prefix.join("bin"),
            library_beside_interpreter: false,
        }
    }

    /// This build's platform.
    pub fn current() -> Self {
        if cfg!(windows) {
            Self::windows(PYTHON_VERSION)
        } else {
            Self::unix(PYTHON_VERSION)
        }
    }
}

/// A usable Python library, as the platform's probe found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Library {
    /// The file to load, or a bare soname for the system's loader to find.
    pub path: PathBuf,
    /// The base interpreter, when it exists (the program name CPython derives its prefix from without a venv).
    pub program: Option<PathBuf>,
    /// How the probe found the file inside the folder, if not simply beside the interpreter.
    pub how: Option<String>,
}

/// Why a folder holds no usable library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// The folder has no Python at all (neither interpreter nor library): the `PATH` search skips it.
    pub no_python: bool,
    /// What is wrong, completing "…, but …" (e.g. `that folder does not exist`).
    pub why: String,
    /// How to fix it, when the probe knows better than the generic advice (e.g. the apt package).
    pub fix: Option<String>,
}

/// What the environment and the file system say, so the search can be tested without either.
pub struct Inputs<'a> {
    pub platform: &'a Platform,
    pub exe_dir: &'a Path,
    pub args: &'a [OsString],
    pub env: &'a dyn Fn(&str) -> Option<OsString>,
    pub read: &'a dyn Fn(&Path) -> Option<String>,
    /// The platform's check of one interpreter folder.
    pub probe: &'a dyn Fn(&Path) -> Result<Library, Missing>,
}

/// Where the Python library was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub library: Library,
    pub found_by: String,
    /// Found through the caller's environment (which IIS does not share), not next to the executable.
    pub from_environment: bool,
}

/// Why it was not found: a summary and the advice, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFound {
    pub summary: String,
    pub details: Vec<String>,
}

/// `home`, `version` / `version_info` of a `pyvenv.cfg`.
fn parse_pyvenv_cfg(text: &str) -> (Option<String>, Option<String>) {
    let (mut home, mut version) = (None, None);
    for line in text.lines() {
        if let Some((key, value)) = line.split_once('=') {
            let value = value.trim();
            match key.trim().to_ascii_lowercase().as_str() {
                "home" if !value.is_empty() => home = Some(value.to_owned()),
                "version" | "version_info" if !value.is_empty() => version = Some(value.to_owned()),
                _ => {}
            }
        }
    }
    (home, version)
}

/// `3.11` of `3.11.9`.
fn minor_of(version: &str) -> String {
    version.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// A venv's base interpreter folder, checked; `None` when `root` has no `pyvenv.cfg`.
fn venv_home(inputs: &Inputs<'_>, root: &Path, how: &str) -> Option<Result<Found, NotFound>> {
    let p = inputs.platform;
    let cfg = root.join("pyvenv.cfg");
    let text = (inputs.read)(&cfg)?;
    let (home, version) = parse_pyvenv_cfg(&text);
    if let Some(minor) = version.as_deref().map(minor_of).filter(|m| m != PYTHON_VERSION) {
        return Some(Err(NotFound {
            summary: format!(
                "the virtual environment {} ({how}) is for Python {minor}, but this pyfcgi is built for Python \
                 {PYTHON_VERSION}",
                root.display()
            ),
            details: vec![format!(
                "How to fix: install pyfcgi into that venv with its own pip (`{} -m pip install --force-reinstall \
                 pyfcgi` picks the build for Python {minor}), or use a Python {PYTHON_VERSION} venv.",
                root.join(p.scripts).join("python").display()
            )],
        }));
    }
    let Some(home) = home else {
        return Some(Err(NotFound {
            summary: format!("{} has no `home` line naming its base Python", cfg.display()),
            details: vec![format!(
                "How to fix: recreate the virtual environment with Python {PYTHON_VERSION} (`python -m venv`), \
                 or add `home = <folder of {} and {}>` to {}.",
                p.interpreter,
                p.library,
                cfg.display()
            )],
        }));
    };
    let home = root.join(home);
    let missing = match (inputs.probe)(&home) {
        Ok(library) => {
            return Some(Ok(Found {
                library,
                found_by: format!("`home` in {} ({how})", cfg.display()),
                from_environment: how == "VIRTUAL_ENV",
            }))
        }
        Err(missing) => missing,
    };
    let summary = if p.library_beside_interpreter || missing.no_python {
        let marker = home.join(if p.library_beside_interpreter {
            &p.library
        } else {
            &p.interpreter
        });
        format!(
            "Python {PYTHON_VERSION} was not found: {} is missing (the base Python of the venv {})",
            marker.display(),
            root.display()
        )
    } else {
        format!(
            "the base Python of the venv {} ({}) has no usable {}",
            root.display(),
            home.join(&p.interpreter).display(),
            p.library
        )
    };
    let mut details = vec![
        format!(
            "The virtual environment {} ({how}) names its base Python as",
            root.display()
        ),
        format!("    home = {}", home.display()),
        format!("in {}, but {}.", cfg.display(), missing.why),
    ];
    details.push(missing.fix.unwrap_or_else(|| {
        format!(
            "How to fix: reinstall Python {PYTHON_VERSION} in {} (the Python the venv was made with was probably \
             moved, upgraded or uninstalled), or recreate the venv with an installed Python {PYTHON_VERSION} \
             (`python -m venv --clear {}`, then reinstall its packages), or correct `home` in {} to the folder \
             that holds {} and {}.",
            home.display(),
            root.display(),
            cfg.display(),
            p.interpreter,
            p.library
        )
    }));
    Some(Err(NotFound { summary, details }))
}

/// A folder given by an environment variable, checked.
fn env_home(inputs: &Inputs<'_>, name: &str) -> Option<Result<Found, NotFound>> {
    let p = inputs.platform;
    let value = (inputs.env)(name).filter(|v| !v.is_empty())?;
    let home = (p.home_of_prefix)(Path::new(&value));
    match (inputs.probe)(&home) {
        Ok(library) => Some(Ok(Found {
            library,
            found_by: name.to_owned(),
            from_environment: true,
        })),
        Err(missing) => Some(Err(NotFound {
            summary: format!(
                "Python {PYTHON_VERSION} was not found: {name} is {} but {}",
                Path::new(&value).display(),
                missing.why
            ),
            details: vec![missing.fix.unwrap_or_else(|| {
                format!(
                    "How to fix: set {name} to the folder of the Python {PYTHON_VERSION} installation (the one \
                     that holds {} and {}; under IIS: the FastCGI application's environment variables), or \
                     unset it.",
                    p.interpreter, p.library
                )
            })],
        })),
    }
}

/// Finds the Python library; see the module documentation for the order.
pub fn locate(inputs: &Inputs<'_>) -> Result<Found, NotFound> {
    let p = inputs.platform;
    let explicit = super::argument(inputs.args, "venv")
        .map(|dir| (dir, "--venv"))
        .or_else(|| {
            (inputs.env)("PYFCGI_VENV")
                .filter(|v| !v.is_empty())
                .map(|v| (PathBuf::from(v), "PYFCGI_VENV"))
        });
    if let Some((root, how)) = explicit {
        return venv_home(inputs, &root, how).unwrap_or_else(|| {
            Err(NotFound {
                summary: format!("{how} names {} but it has no pyvenv.cfg", root.display()),
                details: vec![format!(
                    "How to fix: point {how} at a virtual environment made with Python {PYTHON_VERSION} (the \
                     folder that contains pyvenv.cfg), or remove it."
                )],
            })
        });
    }
    let venv_dirs: Vec<&Path> = [Some(inputs.exe_dir), inputs.exe_dir.parent()]
        .into_iter()
        .flatten()
        .collect();
    let in_venv = venv_dirs
        .iter()
        .any(|dir| (inputs.read)(&dir.join("pyvenv.cfg")).is_some());
    if !in_venv {
        match (inputs.probe)(inputs.exe_dir) {
            Ok(library) => {
                return Ok(Found {
                    library,
                    found_by: "the executable's folder".into(),
                    from_environment: false,
                })
            }
            Err(missing) if !missing.no_python => {
                return Err(NotFound {
                    summary: format!(
                        "Python {PYTHON_VERSION} in {} (the executable's folder) cannot be used: {}",
                        inputs.exe_dir.display(),
                        missing.why
                    ),
                    details: missing.fix.into_iter().collect(),
                })
            }
            Err(_) => {}
        }
    }
    for dir in venv_dirs {
        if let Some(result) = venv_home(inputs, dir, &format!("the venv {} is installed in", p.exe)) {
            return result;
        }
    }
    for name in ["PYFCGI_PYTHON_HOME", "PYTHONHOME"] {
        if let Some(result) = env_home(inputs, name) {
            return result;
        }
    }
    if let Some(root) = (inputs.env)("VIRTUAL_ENV").filter(|v| !v.is_empty()) {
        if let Some(result) = venv_home(inputs, Path::new(&root), "VIRTUAL_ENV") {
            return result;
        }
    }
    let path = (inputs.env)("PATH").unwrap_or_default();
    let mut unusable = None;
    for dir in path
        .to_string_lossy()
        .split(p.path_separator)
        .map(|d| d.trim().trim_matches('"'))
        .filter(|d| !d.is_empty())
    {
        match (inputs.probe)(Path::new(dir)) {
            Ok(library) => {
                return Ok(Found {
                    library,
                    found_by: "PATH".into(),
                    from_environment: true,
                })
            }
            Err(missing) if !missing.no_python && unusable.is_none() => unusable = Some((dir.to_owned(), missing)),
            Err(_) => {}
        }
    }
    if let Some((dir, missing)) = unusable {
        return Err(NotFound {
            summary: format!(
                "Python {PYTHON_VERSION} was found on PATH in {dir} but cannot be used: {}",
                missing.why
            ),
            details: missing.fix.into_iter().collect(),
        });
    }
    Err(NotFound {
        summary: format!(
            "Python {PYTHON_VERSION} was not found: no {} next to {}, no pyvenv.cfg there or one folder up, \
             PYFCGI_PYTHON_HOME, PYTHONHOME and VIRTUAL_ENV are not set, and no folder on PATH has it",
            p.library,
            inputs.exe_dir.display()
        ),
        details: vec![format!(
            "How to fix: install {} into the {} folder of a Python {PYTHON_VERSION} virtual environment \
             (`pip install pyfcgi`), or set PYFCGI_PYTHON_HOME to the folder of the Python {PYTHON_VERSION} \
             installation (under IIS: in the FastCGI application's environment variables; `pyfcgi enable` records \
             it when it finds Python through the environment).",
            p.files, p.scripts
        )],
    })
}

/// The Windows probe, also the simplest: the DLL beside `python.exe`.
#[cfg(any(windows, test))]
pub fn probe_windows(
    platform: &Platform,
    home: &Path,
    is_file: &dyn Fn(&Path) -> bool,
    is_dir: &dyn Fn(&Path) -> bool,
) -> Result<Library, Missing> {
    let dll = home.join(&platform.library);
    if is_file(&dll) {
        return Ok(Library {
            path: dll,
            program: None,
            how: None,
        });
    }
    let why = if is_dir(home) {
        format!("the folder exists but has no {}", platform.library)
    } else {
        "that folder does not exist".to_owned()
    };
    Err(Missing {
        no_python: !is_file(&home.join(&platform.interpreter)),
        why,
        fix: None,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct World {
        platform: Platform,
        files: HashMap<PathBuf, String>,
        env: HashMap<String, String>,
        args: Vec<OsString>,
    }

    impl World {
        fn new() -> Self {
            Self {
                platform: Platform::windows(PYTHON_VERSION),
                files: HashMap::new(),
                env: HashMap::new(),
                args: vec!["pyfcgi.exe".into()],
            }
        }
        fn file(mut self, path: &str, text: &str) -> Self {
            self.files.insert(PathBuf::from(path), text.into());
            self
        }
        fn env(mut self, name: &str, value: &str) -> Self {
            self.env.insert(name.into(), value.into());
            self
        }
        fn locate(&self, exe_dir: &str) -> Result<Found, NotFound> {
            let env = |name: &str| self.env.get(name).map(OsString::from);
            let read = |path: &Path| self.files.get(path).cloned();
            let is_file = |path: &Path| self.files.contains_key(path);
            let is_dir = |path: &Path| self.files.keys().any(|f| f.starts_with(path) && f != path);
            let probe = |home: &Path| probe_windows(&self.platform, home, &is_file, &is_dir);
            locate(&Inputs {
                platform: &self.platform,
                exe_dir: Path::new(exe_dir),
                args: &self.args,
                env: &env,
                read: &read,
                probe: &probe,
            })
        }
    }

    fn dll() -> String {
        Platform::windows(PYTHON_VERSION).library
    }

    #[test]
    fn library_names_from_version() {
        assert_eq!(Platform::windows("3.11").library, "python311.dll");
        assert_eq!(Platform::windows("3.9").library, "python39.dll");
        assert_eq!(Platform::unix("3.9").library, "libpython3.9.so.1.0");
        assert_eq!(Platform::unix("3.13").interpreter, "python3.13");
        assert_eq!(
            (Platform::unix("3.9").home_of_prefix)(Path::new("/opt/py")),
            Path::new("/opt/py/bin")
        );
    }

    #[test]
    fn venv_home_from_scripts_layout() {
        let world = World::new()
            .file(
                "/site/venv/pyvenv.cfg",
                "home = /py311\ninclude-system-site-packages = false\n",
            )
            .file(&format!("/py311/{}", dll()), "")
            .env("PATH", "/elsewhere");
        let found = world.locate("/site/venv/Scripts").unwrap();
        assert_eq!(found.library.path, Path::new("/py311").join(dll()));
        assert!(found.found_by.contains("pyvenv.cfg"));
        assert!(!found.from_environment);
    }

    #[test]
    fn missing_venv_home_is_an_error_even_if_path_has_python() {
        let world = World::new()
            .file(
                "/site/venv/pyvenv.cfg",
                &format!("home = /gone/Python311\nversion = {PYTHON_VERSION}.9\n"),
            )
            .file(&format!("/other/{}", dll()), "")
            .env("PATH", "/other");
        let err = world.locate("/site/venv/Scripts").unwrap_err();
        let missing = Path::new("/gone/Python311").join(dll());
        assert!(err.summary.contains(&missing.display().to_string()), "{err:?}");
        let text = err.details.join("\n");
        assert!(text.contains("home = /gone/Python311"), "{text}");
        assert!(text.contains("does not exist"), "{text}");
        assert!(text.contains("How to fix"), "{text}");
    }

    #[test]
    fn venv_for_another_version_is_refused_before_loading() {
        let world = World::new()
            .file("/v/pyvenv.cfg", "home = /py\nversion_info = 2.7.18\n")
            .file("/py/python27.dll", "")
            .file(&format!("/py/{}", dll()), "");
        let err = world.locate("/v/Scripts").unwrap_err();
        assert!(err.summary.contains("is for Python 2.7"), "{err:?}");
        assert!(
            err.summary.contains(&format!("built for Python {PYTHON_VERSION}")),
            "{err:?}"
        );
        assert!(
            err.details[0].contains("pip install --force-reinstall pyfcgi"),
            "{err:?}"
        );
    }

    #[test]
    fn explicit_venv_wins() {
        let mut world = World::new()
            .file("/a/pyvenv.cfg", "home = /pya")
            .file(&format!("/pya/{}", dll()), "")
            .file("/site/venv/pyvenv.cfg", "home = /pyb")
            .file(&format!("/pyb/{}", dll()), "");
        world.args.extend(["check".into(), "--venv=/a".into()]);
        assert_eq!(
            world.locate("/site/venv/Scripts").unwrap().library.path,
            Path::new("/pya").join(dll())
        );
        world.args.truncate(1);
        let world = world.env("PYFCGI_VENV", "/a");
        let cfg = Path::new("/a").join("pyvenv.cfg");
        assert_eq!(
            world.locate("/site/venv/Scripts").unwrap().found_by,
            format!("`home` in {} (PYFCGI_VENV)", cfg.display())
        );
    }

    #[test]
    fn dll_beside_the_exe() {
        let world = World::new().file(&format!("/py/{}", dll()), "");
        assert_eq!(world.locate("/py").unwrap().found_by, "the executable's folder");
    }

    #[test]
    fn a_venv_folder_is_not_an_installation() {
        // Even with the library beside the executable, a venv's `home` decides.
        let world = World::new()
            .file("/v/pyvenv.cfg", "home = /base")
            .file(&format!("/v/Scripts/{}", dll()), "")
            .file(&format!("/base/{}", dll()), "");
        assert_eq!(
            world.locate("/v/Scripts").unwrap().library.path,
            Path::new("/base").join(dll())
        );
    }

    #[test]
    fn environment_then_path() {
        let world = World::new()
            .file(&format!("/home1/{}", dll()), "")
            .file(&format!("/p2/{}", dll()), "")
            .env("PATH", "/p1;\"/p2\"")
            .env("PYFCGI_PYTHON_HOME", "/home1");
        let found = world.locate("/bin").unwrap();
        assert_eq!(
            (found.found_by.as_str(), found.from_environment),
            ("PYFCGI_PYTHON_HOME", true)
        );
        let world = World::new()
            .file(&format!("/p2/{}", dll()), "")
            .env("PATH", "/p1;\"/p2\"");
        assert_eq!(world.locate("/bin").unwrap().library.path, Path::new("/p2").join(dll()));
        let world = World::new()
            .env("PYFCGI_PYTHON_HOME", "/nope")
            .file(&format!("/p2/{}", dll()), "")
            .env("PATH", "/p2");
        assert!(world
            .locate("/bin")
            .unwrap_err()
            .summary
            .contains("PYFCGI_PYTHON_HOME is /nope"));
    }

    #[test]
    fn unusable_python_on_path_is_reported_if_nothing_else_is_found() {
        // /p1 has an interpreter but no library (a static build), /p2 has nothing at all.
        let world = World::new().file("/p1/python.exe", "").env("PATH", "/p1;/p2");
        let err = world.locate("/bin").unwrap_err();
        assert!(
            err.summary.contains("found on PATH in /p1 but cannot be used"),
            "{err:?}"
        );
        let world = world.file(&format!("/p2/{}", dll()), "");
        assert_eq!(world.locate("/bin").unwrap().library.path, Path::new("/p2").join(dll()));
    }

    #[test]
    fn unix_order_uses_the_prefix_for_python_home() {
        let mut world = World::new().env("PYTHONHOME", "/opt/py");
        world.platform = Platform::unix(PYTHON_VERSION);
        let lib = world.platform.library.clone();
        let world = world.file(&format!("/opt/py/bin/{lib}"), "");
        assert_eq!(
            world.locate("/usr/local/bin").unwrap().library.path,
            Path::new("/opt/py/bin").join(lib)
        );
    }

    #[test]
    fn nothing_found_says_how_to_fix() {
        let err = World::new().locate("/bin").unwrap_err();
        assert!(err.summary.contains("was not found"));
        assert!(err.details[0].contains("PYFCGI_PYTHON_HOME"));
        assert!(err.details[0].contains("pyfcgi.exe and pyfcgi_core.dll"));
    }
}
