//! The wheels' `pyfcgi` (`pyfcgi.exe` on Windows): the launcher, and nothing else. See `launcher/mod.rs`.
//! (`pyo3-ffi` is a dependency for maturin's wheel tags only and is never used, so no libpython is linked.)

mod launcher;

fn main() {
    std::process::exit(launcher::main());
}
