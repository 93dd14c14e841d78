//! `pyfcgi_core.dll`: runs `pyfcgi::cli` (what `pyfcgi` runs on Unix) for the Windows launcher, which has found
//! and loaded `python3XY.dll` before loading this DLL. The command line is the process's own
//! (`std::env::args_os`), and so are the standard handles: this runs in the process IIS started.

#![cfg(windows)]

use std::ffi::OsString;
use std::os::windows::ffi::OsStringExt;
use std::path::PathBuf;

/// `flags` bit: Python was found through the caller's environment.
const FLAG_FROM_ENVIRONMENT: u32 = 1;

/// A NUL-terminated UTF-16 string, or `None` for a null pointer.
///
/// # Safety
/// `text` is null or points to a NUL-terminated UTF-16 string.
unsafe fn from_wide(text: *const u16) -> Option<OsString> {
    if text.is_null() {
        return None;
    }
    let mut len = 0;
    // SAFETY: the string is NUL-terminated (caller's promise).
    while unsafe { *text.add(len) } != 0 {
        len += 1;
    }
    // SAFETY: `len` elements were just read.
    Some(OsString::from_wide(unsafe { std::slice::from_raw_parts(text, len) }))
}

/// The entry point: runs the pyfcgi command line of this process and returns its exit status. `python_dll` is
/// the `python3XY.dll` the launcher loaded and `found_by` how it found it; `flags` may contain
/// [`FLAG_FROM_ENVIRONMENT`]. The `_v1` is the interface version: change the signature, change the name (and
/// `CORE_ENTRY` in windows/launcher.rs), so a mismatched pair fails with a clear message instead of a crash.
///
/// # Safety
/// Both strings are null or NUL-terminated UTF-16 and stay valid during the call.
#[no_mangle]
pub unsafe extern "C" fn pyfcgi_core_main_v1(python_dll: *const u16, found_by: *const u16, flags: u32) -> i32 {
    // SAFETY: the caller's promise.
    let location = unsafe { from_wide(python_dll) }.map(|dll| pyfcgi::cli::PythonLocation {
        dll: PathBuf::from(dll),
        // SAFETY: the caller's promise.
        found_by: unsafe { from_wide(found_by) }.map_or_else(String::new, |s| s.to_string_lossy().into_owned()),
        from_environment: flags & FLAG_FROM_ENVIRONMENT != 0,
    });
    // A panic must not unwind into the launcher (an `extern "C"` boundary): report it as a failure.
    std::panic::catch_unwind(|| pyfcgi::cli::run(std::env::args_os(), location.as_ref())).map_or(101, i32::from)
}
