//! Loading on Windows: `python3XY.dll` by full path (its folder added for the extension modules CPython loads),
//! then `pyfcgi_core.dll` from the launcher's folder, whose import of `python3XY.dll` resolves to the module
//! already loaded. A failure is written to `WSGI_LOG` (else `%TEMP%\pyfcgi-launcher.log`), the Application event
//! log and stderr: under IIS nobody sees stderr.

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

use super::locate::{locate, probe_windows, Found, Inputs, NotFound, Platform};
use super::{append, process_log_path, report_now, version_text, wants_version, CORE_ENTRY, EXIT_NO_PYTHON};

/// The core DLL, in the launcher's folder.
const CORE_DLL: &str = "pyfcgi_core.dll";

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
fn fail(failure: &NotFound, args: &[std::ffi::OsString]) -> i32 {
    let text = report_now(failure);
    let fallback = std::env::temp_dir().join("pyfcgi-launcher.log");
    let wsgi_log = process_log_path(args);
    let written = match &wsgi_log {
        Some(path) => append(path, &text).map_err(|err| (path.clone(), err)),
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
        let _ = append(&fallback, &note);
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
    let dll_path = &found.library.path;
    let home = dll_path.parent().unwrap_or(Path::new("."));
    // For the extension modules CPython loads with LOAD_LIBRARY_SEARCH_DEFAULT_DIRS (which includes these
    // user directories); the process's default search order is left alone.
    // SAFETY: a NUL-terminated path; the cookie is kept for the life of the process.
    unsafe { AddDllDirectory(wide(home.as_os_str()).as_ptr()) };
    load(dll_path).map_err(|err| NotFound {
        summary: format!(
            "cannot load {} (found by {}): {err}",
            dll_path.display(),
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
            dll_path.display(),
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
    let dll = wide(dll_path.as_os_str());
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
    let args: Vec<_> = std::env::args_os().collect();
    if wants_version(&args) {
        println!("{}", version_text());
        return 0;
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("pyfcgi.exe"));
    let exe_dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let platform = Platform::current();
    let env = |name: &str| std::env::var_os(name);
    let read = |path: &Path| std::fs::read_to_string(path).ok();
    let is_file = |path: &Path| path.is_file();
    let is_dir = |path: &Path| path.is_dir();
    let probe = |home: &Path| probe_windows(&platform, home, &is_file, &is_dir);
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
