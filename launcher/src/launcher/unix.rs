//! Loading on Linux (and other Unix): finds the base interpreter's shared `libpython3.X.so.1.0`, `dlopen`s it
//! with `RTLD_NOW | RTLD_GLOBAL`, then `libpyfcgi_core.so` from the launcher's folder, and calls its entry point.
//!
//! The core is built as an extension module would be (no `DT_NEEDED` on libpython): its Python symbols resolve
//! to the library loaded here, which must be global so that the C extensions the application imports (built the
//! same way) resolve too (pyo3#4000: under `RTLD_LOCAL` they fail with `undefined symbol: PyFloat_Type`).
//!
//! In one interpreter folder (`home`) the library is looked for at `home/../lib/libpython3.X.so.1.0` (pyenv,
//! uv's python-build-standalone, a source build), then where the interpreter's sysconfig says (`LIBDIR` /
//! `INSTSONAME`: Debian's `/usr/lib/x86_64-linux-gnu`), then by bare soname through the system's library path.
//! A Python built without a shared library (`Py_ENABLE_SHARED` = 0: manylinux images, older pyenv) is refused
//! with the fix, not paired with some other installation's library. Failures go to `WSGI_LOG`, else stderr.

use std::ffi::{CStr, CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::locate::{locate, Found, Inputs, Library, Missing, NotFound, Platform, PYTHON_VERSION};
use super::{append, process_log_path, report_now, version_text, wants_version, CORE_ENTRY, EXIT_NO_PYTHON};

/// The core library, in the launcher's folder.
const CORE_SO: &str = "libpyfcgi_core.so";

/// `pyfcgi_core_main_v1(library, found_by, program, flags) -> exit status`; NUL-terminated strings, `program`
/// may be null.
type CoreMain = unsafe extern "C" fn(*const libc::c_char, *const libc::c_char, *const libc::c_char, u32) -> i32;
/// `flags` bit: Python was found through the environment.
const FLAG_FROM_ENVIRONMENT: u32 = 1;

/// Printed by the interpreter: its version, and where its shared library is.
const SYSCONFIG: &str = "import sys, sysconfig as s\n\
    v = lambda n: s.get_config_var(n) or ''\n\
    print('%d.%d' % sys.version_info[:2]); print(v('Py_ENABLE_SHARED') or 0); print(v('LIBDIR')); \
    print(v('INSTSONAME'))";

/// The last `dlerror()` text.
fn dl_error() -> String {
    // SAFETY: dlerror returns null or a NUL-terminated string valid until the next dl* call on this thread.
    let text = unsafe { libc::dlerror() };
    if text.is_null() {
        "unknown error".into()
    } else {
        // SAFETY: see above.
        unsafe { CStr::from_ptr(text) }.to_string_lossy().into_owned()
    }
}

fn c_path(path: &Path) -> Option<CString> {
    CString::new(path.as_os_str().as_bytes()).ok()
}

/// `dlopen(path, flags)`; the handle is never closed (the library stays for the life of the process).
fn dl_open(path: &Path, flags: libc::c_int) -> Result<*mut libc::c_void, String> {
    let name = c_path(path).ok_or_else(|| format!("{}: a NUL byte in the path", path.display()))?;
    // SAFETY: a NUL-terminated name; loading runs the library's initialisers, which is what we want.
    let handle = unsafe { libc::dlopen(name.as_ptr(), flags) };
    if handle.is_null() {
        Err(dl_error())
    } else {
        Ok(handle)
    }
}

/// The advice for a Python whose shared library is not installed, by distribution.
fn install_advice(library: &str) -> String {
    if Path::new("/etc/debian_version").exists() {
        format!(
            "How to fix: install the shared library of Debian's / Ubuntu's Python: `apt install libpython{PYTHON_VERSION}` \
             (the python{PYTHON_VERSION} package does not depend on it)."
        )
    } else if Path::new("/etc/redhat-release").exists() {
        format!("How to fix: install the package that provides {library} (`dnf install python{PYTHON_VERSION}-libs`).")
    } else {
        format!("How to fix: install the package of your distribution that provides {library}.")
    }
}

/// Checks one interpreter folder for a usable shared library (see the module documentation for the order).
fn probe(platform: &Platform, home: &Path) -> Result<Library, Missing> {
    let interpreter = home.join(&platform.interpreter);
    let program = interpreter.is_file().then(|| interpreter.clone());
    let beside = home.parent().map(|prefix| prefix.join("lib").join(&platform.library));
    if let Some(lib) = beside.as_ref().filter(|lib| lib.is_file()) {
        return Ok(Library {
            path: lib.clone(),
            program,
            how: None,
        });
    }
    let Some(interpreter) = program.clone() else {
        let why = if home.is_dir() {
            format!("the folder has no {}", platform.interpreter)
        } else {
            "that folder does not exist".to_owned()
        };
        return Err(Missing {
            no_python: true,
            why,
            fix: None,
        });
    };
    let output = Command::new(&interpreter)
        .args(["-I", "-S", "-c", SYSCONFIG])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output();
    let output = match output {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        Ok(out) => {
            return Err(Missing {
                no_python: false,
                why: format!("{} does not run ({})", interpreter.display(), out.status),
                fix: None,
            })
        }
        Err(err) => {
            return Err(Missing {
                no_python: false,
                why: format!("{} cannot be started: {err}", interpreter.display()),
                fix: None,
            })
        }
    };
    let mut lines = output.lines().map(str::trim);
    let (version, shared, libdir, soname) = (
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
        lines.next().filter(|s| !s.is_empty()).unwrap_or(&platform.library),
    );
    if version != PYTHON_VERSION {
        return Err(Missing {
            no_python: false,
            why: format!("{} is Python {version}, not {PYTHON_VERSION}", interpreter.display()),
            fix: None,
        });
    }
    if shared != "1" {
        return Err(Missing {
            no_python: false,
            why: format!(
                "{} was built without a shared library (sysconfig Py_ENABLE_SHARED is {shared}), and pyfcgi \
                 loads {} into its own process",
                interpreter.display(),
                platform.library
            ),
            fix: Some(format!(
                "How to fix: use a Python {PYTHON_VERSION} built with --enable-shared and recreate the venv with \
                 it (then reinstall its packages): with pyenv, `env PYTHON_CONFIGURE_OPTS=--enable-shared pyenv \
                 install --force {PYTHON_VERSION}`; uv's Pythons (`uv python install {PYTHON_VERSION}`) and the \
                 distribution's python{PYTHON_VERSION} (with its libpython{PYTHON_VERSION} package) have one."
            )),
        });
    }
    let configured = Path::new(libdir).join(soname);
    if !libdir.is_empty() && configured.is_file() {
        return Ok(Library {
            path: configured,
            program,
            how: Some("sysconfig LIBDIR".into()),
        });
    }
    // The system's library path (ld.so.cache): loading it is the only faithful test of what the loader finds.
    if dl_open(Path::new(soname), libc::RTLD_NOW | libc::RTLD_GLOBAL).is_ok() {
        return Ok(Library {
            path: PathBuf::from(soname),
            program,
            how: Some("the system library path".into()),
        });
    }
    let mut looked = Vec::new();
    if let Some(lib) = &beside {
        looked.push(lib.display().to_string());
    }
    if !libdir.is_empty() {
        looked.push(configured.display().to_string());
    }
    Err(Missing {
        no_python: false,
        why: format!(
            "its shared library {soname} is not installed (not at {}, and not on the system library path)",
            looked.join(" or ")
        ),
        fix: Some(install_advice(soname)),
    })
}

/// Says why the process cannot start (to `WSGI_LOG`, else stderr) and returns the exit status.
fn fail(failure: &NotFound, args: &[OsString]) -> i32 {
    let text = report_now(failure);
    match process_log_path(args) {
        Some(path) => {
            if let Err(err) = append(&path, &text) {
                eprintln!("{text}    (WSGI_LOG {} could not be written: {err})", path.display());
            }
        }
        None => eprint!("{text}"),
    }
    EXIT_NO_PYTHON
}

fn run(found: &Found, exe_dir: &Path) -> Result<i32, NotFound> {
    let library = &found.library;
    let found_by = match &library.how {
        Some(how) => format!("{}, {how}", found.found_by),
        None => found.found_by.clone(),
    };
    dl_open(&library.path, libc::RTLD_NOW | libc::RTLD_GLOBAL).map_err(|err| NotFound {
        summary: format!("cannot load {} (found by {found_by}): {err}", library.path.display()),
        details: vec!["How to fix: repair or reinstall that Python installation.".into()],
    })?;
    let core_path = exe_dir.join(CORE_SO);
    let core = dl_open(&core_path, libc::RTLD_NOW | libc::RTLD_LOCAL).map_err(|err| NotFound {
        summary: format!("cannot load {}: {err}", core_path.display()),
        details: vec![format!(
            "Python was found ({}, by {found_by}). pyfcgi needs {CORE_SO} from the same release and for the same \
             Python minor version in its own folder: reinstall pyfcgi (`pip install --force-reinstall pyfcgi`).",
            library.path.display()
        )],
    })?;
    // SAFETY: a valid handle and a NUL-terminated symbol name.
    let entry = unsafe { libc::dlsym(core, CORE_ENTRY.as_ptr().cast()) };
    if entry.is_null() {
        return Err(NotFound {
            summary: format!(
                "{} does not export {}: it is from another pyfcgi release than this launcher",
                core_path.display(),
                String::from_utf8_lossy(&CORE_ENTRY[..CORE_ENTRY.len() - 1])
            ),
            details: vec!["How to fix: reinstall pyfcgi so both files come from the same release.".into()],
        });
    }
    // SAFETY: the export has this signature (same interface version, see CORE_ENTRY).
    let entry: CoreMain = unsafe { std::mem::transmute::<*mut libc::c_void, CoreMain>(entry) };
    let path = c_path(&library.path);
    let found_by = CString::new(found_by.replace('\0', " ")).unwrap_or_default();
    let program = library.program.as_deref().and_then(c_path);
    let flags = if found.from_environment {
        FLAG_FROM_ENVIRONMENT
    } else {
        0
    };
    // SAFETY: the strings outlive the call, which runs the whole server.
    Ok(unsafe {
        entry(
            path.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
            found_by.as_ptr(),
            program.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
            flags,
        )
    })
}

/// The launcher's `main`: the process exit status.
pub fn main() -> i32 {
    let args: Vec<OsString> = std::env::args_os().collect();
    if wants_version(&args) {
        println!("{}", version_text());
        return 0;
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("pyfcgi"));
    let exe_dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let platform = Platform::current();
    let env = |name: &str| std::env::var_os(name);
    let read = |path: &Path| std::fs::read_to_string(path).ok();
    let probe = |home: &Path| probe(&platform, home);
    let inputs = Inputs {
        platform: &platform,
        exe_dir: &exe_dir,
        args: &args,
        env: &env,
        read: &read,
        probe: &probe,
    };
    match locate(&inputs).and_then(|found| run(&found, &exe_dir)) {
        Ok(code) => code,
        Err(failure) => fail(&failure, &args),
    }
}
