//! The `pyfcgi` command. On Unix this is the whole program (`pyfcgi::cli`), linked against libpython, which the
//! rpath set by build.rs finds. On Windows it is a launcher that does not import `python3XY.dll`: it finds the
//! Python installation, then loads `pyfcgi_core.dll` (the same `pyfcgi::cli`) from its own folder and runs it in
//! this process. See `windows/launcher.rs`.

#[cfg(not(windows))]
fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(pyfcgi::cli::run(std::env::args_os(), None))
}

#[cfg(any(windows, test))]
#[path = "../windows/launcher.rs"]
mod launcher;

#[cfg(windows)]
fn main() {
    std::process::exit(launcher::main());
}
