//! Makes binaries find the libpython they were built against without LD_LIBRARY_PATH (an rpath to the build
//! interpreter's library directory), and records that interpreter so start-up can point CPython's own path
//! discovery at it when no virtual environment is in use. `PYO3_PYTHON` selects the interpreter.

fn main() {
    let config = pyo3_build_config::get();
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os != "windows" {
        if let Some(lib_dir) = config.lib_dir() {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
        }
    }
    println!(
        "cargo:rustc-env=PYFCGI_BUILD_PYTHON={}",
        config.executable().unwrap_or("")
    );
    println!("cargo:rustc-env=PYFCGI_BUILD_PYTHON_VERSION={}", config.version());
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
