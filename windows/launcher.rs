//! The Windows `pyfcgi.exe`: a launcher that does not import `python3XY.dll`.
//!
//! pip puts `pyfcgi.exe` into a venv's `Scripts\` folder, which has no `python3XY.dll` (the base installation named
//! by `home` in `..\pyvenv.cfg` has it). An exe that imports the DLL would be killed by the loader before `main`
//! (0xC0000135) whenever that folder is not on `PATH`, which is the normal case under IIS, and nothing would be
//! logged. So this exe links only Windows system DLLs: it finds the Python folder, loads `python3XY.dll` from it
//! by full path, then loads `pyfcgi_core.dll` from its own folder (whose import of `python3XY.dll` resolves to the
//! module already loaded) and calls its entry point in this process: IIS tracks the process it started and
//! passed the FastCGI pipe to as stdin, so there is no second process. When Python cannot be found, it writes why
//! and how to fix it to `WSGI_LOG` (else `%TEMP%\pyfcgi-launcher.log`), the Windows event log and stderr, and
//! exits with [`EXIT_NO_PYTHON`].
//!
//! Where Python is looked for, first match wins:
//! 1. the venv given by `--venv DIR` or `PYFCGI_VENV` (its `pyvenv.cfg` `home`);
//! 2. the executable's own folder (pyfcgi.exe copied into a Python installation);
//! 3. a `pyvenv.cfg` next to the executable or one folder up (pip's `Scripts\` layout): its `home`;
//! 4. `PYFCGI_PYTHON_HOME`, then `PYTHONHOME`;
//! 5. the venv in `VIRTUAL_ENV` (an activated shell): its `home`;
//! 6. each folder of `PATH`.
//!
//! Steps 1 and 3–5 decide when they apply: a venv whose `home` lacks the DLL is an error, not a reason to pick
//! some other Python that CPython would then pair with the venv's packages. Only the `PATH` search goes on
//! looking. The pure part (this list) is tested on every platform; loading is Windows only.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The Python minor version this build is for, e.g. `3.11` (set by build.rs).
const PYTHON_VERSION: &str = env!("PYFCGI_BUILD_PYTHON_VERSION");

/// The core DLL, in the launcher's folder.
#[cfg_attr(not(windows), allow(dead_code))]
const CORE_DLL: &str = "pyfcgi_core.dll";

/// The core's entry point. The name carries the interface version, so a launcher and a core from different
/// releases are told apart by a missing export rather than by a crash (see `windows/core/lib.rs`).
#[cfg_attr(not(windows), allow(dead_code))]
const CORE_ENTRY: &[u8] = b"pyfcgi_core_main_v1\0";

/// Exit status when Python or the core cannot be loaded.
#[cfg_attr(not(windows), allow(dead_code))]
pub const EXIT_NO_PYTHON: i32 = 3;

/// `python311.dll` for Python 3.11.
fn python_dll_name(version: &str) -> String {
    format!("python{}.dll", version.replace('.', ""))
}

/// What the environment and the file system say, so the search can be tested without either.
pub struct Inputs<'a> {
    pub exe_dir: &'a Path,
    pub args: &'a [OsString],
    pub env: &'a dyn Fn(&str) -> Option<OsString>,
    pub read: &'a dyn Fn(&Path) -> Option<String>,
    pub is_file: &'a dyn Fn(&Path) -> bool,
    pub is_dir: &'a dyn Fn(&Path) -> bool,
}

/// Where the Python DLL was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub dll: PathBuf,
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

/// The value of `--venv DIR` / `--venv=DIR` on the command line.
fn venv_argument(args: &[OsString]) -> Option<PathBuf> {
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        let text = arg.to_string_lossy();
        if text == "--" {
            break;
        }
        if text == "--venv" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(value) = text.strip_prefix("--venv=") {
            return Some(PathBuf::from(value));
        }
    }
    None
}

/// A venv's base interpreter folder, checked; `Err` explains what is wrong with it.
fn venv_home(inputs: &Inputs<'_>, root: &Path, how: &str, dll_name: &str) -> Option<Result<Found, NotFound>> {
    let cfg = root.join("pyvenv.cfg");
    let text = (inputs.read)(&cfg)?;
    let (home, version) = parse_pyvenv_cfg(&text);
    let Some(home) = home else {
        return Some(Err(NotFound {
            summary: format!("{} has no `home` line naming its base Python", cfg.display()),
            details: vec![format!(
                "How to fix: recreate the virtual environment with Python {PYTHON_VERSION} (`python -m venv`), \
                 or add `home = <folder of python.exe and {dll_name}>` to {}.",
                cfg.display()
            )],
        }));
    };
    let home = root.join(home);
    let dll = home.join(dll_name);
    if (inputs.is_file)(&dll) {
        return Some(Ok(Found {
            dll,
            found_by: format!("`home` in {} ({how})", cfg.display()),
            from_environment: how == "VIRTUAL_ENV",
        }));
    }
    let why = if (inputs.is_dir)(&home) {
        format!("the folder exists but has no {dll_name}")
    } else {
        "that folder does not exist".to_owned()
    };
    let mut details = vec![
        format!(
            "The virtual environment {} ({how}) names its base Python as",
            root.display()
        ),
        format!("    home = {}", home.display()),
        format!("in {}, but {why}.", cfg.display()),
    ];
    let minor = version
        .as_deref()
        .map(|v| v.split('.').take(2).collect::<Vec<_>>().join("."));
    if let Some(minor) = minor.filter(|m| m != PYTHON_VERSION) {
        details.push(format!(
            "The venv is for Python {minor}, but this pyfcgi is built for Python {PYTHON_VERSION}: install the \
             pyfcgi built for Python {minor} into it, or use a Python {PYTHON_VERSION} venv."
        ));
    }
    details.push(format!(
        "How to fix: reinstall Python {PYTHON_VERSION} in {} (the Python the venv was made with was probably \
         moved, upgraded or uninstalled), or recreate the venv with an installed Python {PYTHON_VERSION} \
         (`python -m venv --clear {}`, then reinstall its packages), or correct `home` in {} to the folder \
         that holds python.exe and {dll_name}.",
        home.display(),
        root.display(),
        cfg.display()
    ));
    Some(Err(NotFound {
        summary: format!(
            "Python {PYTHON_VERSION} was not found: {} is missing (the base Python of the venv {})",
            dll.display(),
            root.display()
        ),
        details,
    }))
}

/// A folder given by an environment variable, checked.
fn env_home(inputs: &Inputs<'_>, name: &str, dll_name: &str) -> Option<Result<Found, NotFound>> {
    let value = (inputs.env)(name).filter(|v| !v.is_empty())?;
    let home = PathBuf::from(value);
    let dll = home.join(dll_name);
    if (inputs.is_file)(&dll) {
        return Some(Ok(Found {
            dll,
            found_by: name.to_owned(),
            from_environment: true,
        }));
    }
    Some(Err(NotFound {
        summary: format!(
            "Python {PYTHON_VERSION} was not found: {name} is {} but {} is missing",
            home.display(),
            dll.display()
        ),
        details: vec![format!(
            "How to fix: set {name} to the folder of the Python {PYTHON_VERSION} installation that holds python.exe \
             and {dll_name} (under IIS: the FastCGI application's environment variables), or unset it."
        )],
    }))
}

/// Finds the Python DLL; see the module documentation for the order.
pub fn locate(inputs: &Inputs<'_>) -> Result<Found, NotFound> {
    let dll_name = python_dll_name(PYTHON_VERSION);
    let explicit = venv_argument(inputs.args).map(|dir| (dir, "--venv")).or_else(|| {
        (inputs.env)("PYFCGI_VENV")
            .filter(|v| !v.is_empty())
            .map(|v| (PathBuf::from(v), "PYFCGI_VENV"))
    });
    if let Some((root, how)) = explicit {
        match venv_home(inputs, &root, how, &dll_name) {
            Some(result) => return result,
            None => {
                return Err(NotFound {
                    summary: format!("{how} names {} but it has no pyvenv.cfg", root.display()),
                    details: vec![format!(
                        "How to fix: point {how} at a virtual environment made with Python {PYTHON_VERSION} (the \
                         folder that contains pyvenv.cfg), or remove it."
                    )],
                })
            }
        }
    }
    let beside = inputs.exe_dir.join(&dll_name);
    if (inputs.is_file)(&beside) {
        return Ok(Found {
            dll: beside,
            found_by: "the executable's folder".into(),
            from_environment: false,
        });
    }
    for dir in [Some(inputs.exe_dir), inputs.exe_dir.parent()].into_iter().flatten() {
        if let Some(result) = venv_home(inputs, dir, "the venv pyfcgi.exe is installed in", &dll_name) {
            return result;
        }
    }
    for name in ["PYFCGI_PYTHON_HOME", "PYTHONHOME"] {
        if let Some(result) = env_home(inputs, name, &dll_name) {
            return result;
        }
    }
    if let Some(root) = (inputs.env)("VIRTUAL_ENV").filter(|v| !v.is_empty()) {
        if let Some(result) = venv_home(inputs, Path::new(&root), "VIRTUAL_ENV", &dll_name) {
            return result;
        }
    }
    let path = (inputs.env)("PATH").unwrap_or_default();
    for dir in path
        .to_string_lossy()
        .split(';')
        .map(|d| d.trim().trim_matches('"'))
        .filter(|d| !d.is_empty())
    {
        let dll = Path::new(dir).join(&dll_name);
        if (inputs.is_file)(&dll) {
            return Ok(Found {
                dll,
                found_by: "PATH".into(),
                from_environment: true,
            });
        }
    }
    Err(NotFound {
        summary: format!(
            "Python {PYTHON_VERSION} was not found: no {dll_name} next to {}, no pyvenv.cfg there or one folder up, \
             PYFCGI_PYTHON_HOME, PYTHONHOME and VIRTUAL_ENV are not set, and no folder on PATH has it",
            inputs.exe_dir.display()
        ),
        details: vec![format!(
            "How to fix: install pyfcgi.exe and pyfcgi_core.dll into the Scripts folder of a Python \
             {PYTHON_VERSION} virtual environment (`pip install pyfcgi`), or set PYFCGI_PYTHON_HOME to the folder \
             of the Python {PYTHON_VERSION} installation that holds python.exe and {dll_name} (under IIS: in the \
             FastCGI application's environment variables; `pyfcgi enable` records it when it finds Python \
             through the environment)."
        )],
    })
}

/// `2026-11-05T10:11:12Z` for a time in seconds since 1970 (UTC, as pyfcgi's own log lines).
fn utc_timestamp(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The log text: one `ERROR` line, then the details indented.
fn report_text(pid: u32, now_secs: u64, summary: &str, details: &[String]) -> String {
    let mut text = format!(
        "{} ERROR pyfcgi launcher (pid {pid}): cannot start: {summary}\n",
        utc_timestamp(now_secs)
    );
    for line in details {
        text.push_str("    ");
        text.push_str(line);
        text.push('\n');
    }
    text
}

#[cfg(windows)]
pub use self::windows_impl::main;

#[cfg(windows)]
mod windows_impl {
    use std::ffi::OsStr;
    use std::io::Write;
    use std::os::windows::ffi::OsStrExt;
    use std::path::{Path, PathBuf};

    use windows_sys::Win32::Foundation::HMODULE;
    use windows_sys::Win32::System::EventLog::{
        DeregisterEventSource, RegisterEventSourceW, ReportEventW, EVENTLOG_ERROR_TYPE,
    };
    use windows_sys::Win32::System::LibraryLoader::{
        AddDllDirectory, GetProcAddress, LoadLibraryExW, LOAD_WITH_ALTERED_SEARCH_PATH,
    };

    use super::{locate, report_text, Found, Inputs, NotFound, CORE_DLL, CORE_ENTRY, EXIT_NO_PYTHON};

    /// `pyfcgi_core_main_v1(python_dll, found_by, flags) -> exit status`; both strings NUL-terminated UTF-16.
    type CoreMain = unsafe extern "C" fn(*const u16, *const u16, u32) -> i32;
    /// `flags` bit: Python was found through the environment (see `cli::PythonLocation::from_environment`).
    const FLAG_FROM_ENVIRONMENT: u32 = 1;

    fn wide(s: &OsStr) -> Vec<u16> {
        s.encode_wide().chain(Some(0)).collect()
    }

    /// Loads a DLL by full path; its own dependencies are looked for in its folder first.
    fn load(path: &Path) -> std::io::Result<HMODULE> {
        // SAFETY: a NUL-terminated path; loading runs the DLL's initialisation, which is what we want.
        let module = unsafe {
            LoadLibraryExW(
                wide(path.as_os_str()).as_ptr(),
                std::ptr::null_mut(),
                LOAD_WITH_ALTERED_SEARCH_PATH,
            )
        };
        if module.is_null() {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(module)
        }
    }

    /// Says why the process cannot start, everywhere that might be read, and returns the exit status.
    fn fail(failure: &NotFound) -> i32 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let text = report_text(std::process::id(), now, &failure.summary, &failure.details);
        let fallback = std::env::temp_dir().join("pyfcgi-launcher.log");
        let wsgi_log = std::env::var_os("WSGI_LOG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let append = |path: &Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| f.write_all(text.as_bytes()))
        };
        let written = match &wsgi_log {
            Some(path) => append(path).map_err(|err| (path.clone(), err)),
            None => Err((PathBuf::new(), std::io::Error::other("WSGI_LOG is not set"))),
        };
        if let Err((path, err)) = written {
            let mut note = text.clone();
            if wsgi_log.is_some() {
                note.push_str(&format!(
                    "    (WSGI_LOG {} could not be written: {err})\n",
                    path.display()
                ));
            }
            let _ = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&fallback)
                .and_then(|mut f| f.write_all(note.as_bytes()));
        }
        let _ = std::io::stderr().write_all(text.as_bytes());
        event_log(&text);
        EXIT_NO_PYTHON
    }

    /// An Error entry in the Application event log (source `pyfcgi`). Best effort: without a registered message
    /// file, Event Viewer shows the text under "the following information was included with the event".
    fn event_log(text: &str) {
        let source = wide(OsStr::new("pyfcgi"));
        let message = wide(OsStr::new(text));
        // SAFETY: NUL-terminated strings that outlive the calls; the handle is closed here.
        unsafe {
            let log = RegisterEventSourceW(std::ptr::null(), source.as_ptr());
            if !log.is_null() {
                let strings = [message.as_ptr()];
                ReportEventW(
                    log,
                    EVENTLOG_ERROR_TYPE,
                    0,
                    1,
                    std::ptr::null_mut(),
                    1,
                    0,
                    strings.as_ptr(),
                    std::ptr::null(),
                );
                DeregisterEventSource(log);
            }
        }
    }

    fn run(found: &Found, exe_dir: &Path) -> Result<i32, NotFound> {
        let home = found.dll.parent().unwrap_or(Path::new("."));
        // For the extension modules CPython loads with LOAD_LIBRARY_SEARCH_DEFAULT_DIRS (which includes these
        // user directories); the process's default search order is left alone.
        // SAFETY: a NUL-terminated path; the cookie is kept for the life of the process.
        unsafe { AddDllDirectory(wide(home.as_os_str()).as_ptr()) };
        load(&found.dll).map_err(|err| NotFound {
            summary: format!(
                "cannot load {} (found by {}): {err}",
                found.dll.display(),
                found.found_by
            ),
            details: vec![
                "How to fix: repair or reinstall that Python installation; a DLL it needs (vcruntime140.dll, the \
                 Universal CRT) may be missing."
                    .into(),
            ],
        })?;
        // Extension modules built for the stable ABI import python3.dll, which a venv's Scripts folder (this
        // process's application folder) does not have: load it now so they resolve to it.
        let stable = home.join("python3.dll");
        if stable.is_file() {
            let _ = load(&stable);
        }
        let core_path = exe_dir.join(CORE_DLL);
        let core = load(&core_path).map_err(|err| NotFound {
            summary: format!("cannot load {}: {err}", core_path.display()),
            details: vec![format!(
                "Python was found ({}, by {}). pyfcgi.exe needs {CORE_DLL} from the same release in its own \
                 folder: reinstall pyfcgi (`pip install --force-reinstall pyfcgi`).",
                found.dll.display(),
                found.found_by
            )],
        })?;
        // SAFETY: a NUL-terminated export name.
        let entry = unsafe { GetProcAddress(core, CORE_ENTRY.as_ptr()) }.ok_or_else(|| NotFound {
            summary: format!(
                "{} does not export {}: it is from another pyfcgi release than pyfcgi.exe",
                core_path.display(),
                String::from_utf8_lossy(&CORE_ENTRY[..CORE_ENTRY.len() - 1])
            ),
            details: vec!["How to fix: reinstall pyfcgi so both files come from the same release.".into()],
        })?;
        // SAFETY: the export has this signature (same interface version, see CORE_ENTRY).
        let entry: CoreMain = unsafe { std::mem::transmute::<unsafe extern "system" fn() -> isize, CoreMain>(entry) };
        let dll = wide(found.dll.as_os_str());
        let found_by = wide(OsStr::new(&found.found_by));
        let flags = if found.from_environment {
            FLAG_FROM_ENVIRONMENT
        } else {
            0
        };
        // SAFETY: both strings outlive the call, which runs the whole server.
        Ok(unsafe { entry(dll.as_ptr(), found_by.as_ptr(), flags) })
    }

    /// The launcher's `main`: the process exit status.
    pub fn main() -> i32 {
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("pyfcgi.exe"));
        let exe_dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
        let args: Vec<_> = std::env::args_os().collect();
        let env = |name: &str| std::env::var_os(name);
        let read = |path: &Path| std::fs::read_to_string(path).ok();
        let is_file = |path: &Path| path.is_file();
        let is_dir = |path: &Path| path.is_dir();
        let inputs = Inputs {
            exe_dir: &exe_dir,
            args: &args,
            env: &env,
            read: &read,
            is_file: &is_file,
            is_dir: &is_dir,
        };
        match locate(&inputs).and_then(|found| run(&found, &exe_dir)) {
            Ok(code) => code,
            Err(failure) => fail(&failure),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct World {
        files: HashMap<PathBuf, String>,
        env: HashMap<String, String>,
        args: Vec<OsString>,
    }

    impl World {
        fn new() -> Self {
            Self {
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
            locate(&Inputs {
                exe_dir: Path::new(exe_dir),
                args: &self.args,
                env: &env,
                read: &read,
                is_file: &is_file,
                is_dir: &is_dir,
            })
        }
    }

    fn dll() -> String {
        python_dll_name(PYTHON_VERSION)
    }

    #[test]
    fn dll_name_from_version() {
        assert_eq!(python_dll_name("3.11"), "python311.dll");
        assert_eq!(python_dll_name("3.9"), "python39.dll");
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
        assert_eq!(found.dll, Path::new("/py311").join(dll()));
        assert!(found.found_by.contains("pyvenv.cfg"));
        assert!(!found.from_environment);
    }

    #[test]
    fn missing_venv_home_is_an_error_even_if_path_has_python() {
        let world = World::new()
            .file("/site/venv/pyvenv.cfg", "home = /gone/Python311\nversion = 3.11.9\n")
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
    fn venv_for_another_version_is_explained() {
        let world = World::new()
            .file("/v/pyvenv.cfg", "home = /py\nversion_info = 2.7.18\n")
            .file("/py/python27.dll", "");
        let err = world.locate("/v/Scripts").unwrap_err();
        assert!(err.details.join("\n").contains("The venv is for Python 2.7"), "{err:?}");
        assert!(
            err.details.join("\n").contains("the folder exists but has no"),
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
            world.locate("/site/venv/Scripts").unwrap().dll,
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
        assert_eq!(world.locate("/bin").unwrap().dll, Path::new("/p2").join(dll()));
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
    fn nothing_found_says_how_to_fix() {
        let err = World::new().locate("/bin").unwrap_err();
        assert!(err.summary.contains("was not found"));
        assert!(err.details[0].contains("PYFCGI_PYTHON_HOME"));
    }

    #[test]
    fn report_is_one_error_line_then_details() {
        let text = report_text(7, 1_700_000_000, "it broke", &["fix it".into()]);
        assert_eq!(
            text,
            "2023-11-14T22:13:20Z ERROR pyfcgi launcher (pid 7): cannot start: it broke\n    fix it\n"
        );
        assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_timestamp(951_782_400), "2000-02-29T00:00:00Z");
    }
}
