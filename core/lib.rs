//! `pyfcgi_core.dll` / `libpyfcgi_core.so`: runs `pyfcgi::cli` (what a source build's `pyfcgi` runs) for the
//! launcher (launcher/src/launcher), which has found and loaded the Python library before loading this one. The
//! command line is the process's own (`std::env::args_os`), and so are the standard handles: this runs in the
//! process the web server started.

use std::path::PathBuf;

/// `flags` bit: Python was found through the caller's environment.
const FLAG_FROM_ENVIRONMENT: u32 = 1;

/// Runs the command line, turning a panic into a failure: it must not unwind into the launcher (an `extern "C"`
/// boundary).
fn run(location: Option<pyfcgi::cli::PythonLocation>) -> i32 {
    std::panic::catch_unwind(|| pyfcgi::cli::run(std::env::args_os(), location.as_ref())).map_or(101, i32::from)
}

/// A NUL-terminated UTF-16 string, or `None` for a null pointer.
///
/// # Safety
/// `text` is null or points to a NUL-terminated UTF-16 string.
#[cfg(windows)]
unsafe fn from_wide(text: *const u16) -> Option<std::ffi::OsString> {
    use std::os::windows::ffi::OsStringExt;
    if text.is_null() {
        return None;
    }
    let mut len = 0;
    // SAFETY: the string is NUL-terminated (caller's promise).
    while unsafe { *text.add(len) } != 0 {
        len += 1;
    }
    // SAFETY: `len` elements were just read.
    Some(std::ffi::OsString::from_wide(unsafe {
        std::slice::from_raw_parts(text, len)
    }))
}

/// The Windows entry point: runs the pyfcgi command line of this process and returns its exit status.
/// `python_dll` is the `python3XY.dll` the launcher loaded and `found_by` how it found it; `flags` may contain
/// [`FLAG_FROM_ENVIRONMENT`]. The `_v1` is the interface version: change the signature, change the name (and
/// `CORE_ENTRY` in launcher/src/launcher/mod.rs), so a mismatched pair fails with a clear message, not a crash.
///
/// # Safety
/// Both strings are null or NUL-terminated UTF-16 and stay valid during the call.
#[cfg(windows)]
#[no_mangle]
pub unsafe extern "C" fn pyfcgi_core_main_v1(python_dll: *const u16, found_by: *const u16, flags: u32) -> i32 {
    // SAFETY: the caller's promise.
    let location = unsafe { from_wide(python_dll) }.map(|dll| pyfcgi::cli::PythonLocation {
        dll: PathBuf::from(dll),
        // SAFETY: the caller's promise.
        found_by: unsafe { from_wide(found_by) }.map_or_else(String::new, |s| s.to_string_lossy().into_owned()),
        from_environment: flags & FLAG_FROM_ENVIRONMENT != 0,
        program: None,
    });
    run(location)
}

/// A NUL-terminated byte string as a path, or `None` for a null pointer.
///
/// # Safety
/// `text` is null or points to a NUL-terminated string.
#[cfg(unix)]
unsafe fn from_c(text: *const std::ffi::c_char) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    if text.is_null() {
        return None;
    }
    // SAFETY: the caller's promise.
    let bytes = unsafe { std::ffi::CStr::from_ptr(text) }.to_bytes();
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
}

/// The Unix entry point, as on Windows but with byte strings, plus `program`: the base interpreter (null if
/// unknown), which CPython derives its prefix from when no venv is in use.
///
/// # Safety
/// The strings are null or NUL-terminated and stay valid during the call.
#[cfg(unix)]
#[no_mangle]
pub unsafe extern "C" fn pyfcgi_core_main_v1(
    library: *const std::ffi::c_char,
    found_by: *const std::ffi::c_char,
    program: *const std::ffi::c_char,
    flags: u32,
) -> i32 {
    // SAFETY: the caller's promise, for each string.
    let location = unsafe { from_c(library) }.map(|dll| pyfcgi::cli::PythonLocation {
        dll,
        // SAFETY: as above.
        found_by: unsafe { from_c(found_by) }.map_or_else(String::new, |p| p.display().to_string()),
        from_environment: flags & FLAG_FROM_ENVIRONMENT != 0,
        // SAFETY: as above.
        program: unsafe { from_c(program) },
    });
    run(location)
}
