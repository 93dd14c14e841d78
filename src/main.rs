//! The `pyfcgi` command of a source build. On Unix this is the whole program (`pyfcgi::cli`), linked against
//! libpython, which the rpath set by build.rs finds: what `cargo build` and the test suites run. On Windows it is
//! the launcher (`launcher/src/launcher`), which does not import `python3XY.dll`: it finds the Python
//! installation, then loads `pyfcgi_core.dll` (the same `pyfcgi::cli`) from its own folder and runs it in this
//! process. The wheels ship the launcher on every platform (the `pyfcgi-launcher` package, core/ beside it).

#[cfg(not(windows))]
fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(pyfcgi::cli::run(std::env::args_os(), None))
}

// Compiled into the Unix test build too, so the shared search order is tested on every platform.
#[cfg(any(windows, test))]
#[cfg_attr(not(windows), allow(dead_code))]
#[path = "../launcher/src/launcher/mod.rs"]
mod launcher;

#[cfg(windows)]
fn main() {
    std::process::exit(launcher::main());
}
