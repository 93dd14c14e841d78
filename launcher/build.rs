//! The Python minor version the launcher is for (`PYO3_PYTHON`, or the interpreter maturin picks with `-i`), as
//! the main package's build.rs records it. No link arguments: the launcher links no Python.

fn main() {
    let config = pyo3_build_config::get();
    println!("cargo:rustc-env=PYFCGI_BUILD_PYTHON_VERSION={}", config.version());
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
