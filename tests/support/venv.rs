//! The virtual environment the end-to-end tests run pyfcgi from (`tests/apps_e2e.rs`, `tests/asgi_e2e.rs`):
//! `PYFCGI_E2E_VENV` names one prepared beforehand (`tests/e2e/prepare_venv.sh`; its `bin/pyfcgi` is used as it
//! is). Otherwise one is prepared once per run, cached in `target/e2e-venv-<X.Y>`, for the Python this build links
//! (`pyfcgi::python::BUILD_PYTHON`), with `tests/e2e/requirements.txt` from PyPI and this build's pyfcgi binary
//! copied into its `bin/`. Concurrent test binaries take turns (the script locks the directory).

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

/// The venv the tests run pyfcgi from.
pub struct Venv {
    pub dir: PathBuf,
    pub pyfcgi: PathBuf,
    /// `X.Y.Z` of the venv's Python.
    pub python_version: String,
}

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Prints to the real stderr, past the test harness's output capture, so every run says what it tested.
pub fn announce(line: &str) {
    let _ = writeln!(io::stderr().lock(), "[e2e] {line}");
}

/// The venv, prepared on first use; a failure is reported by every test that needs it.
pub fn venv() -> &'static Venv {
    static VENV: OnceLock<Result<Venv, String>> = OnceLock::new();
    match VENV.get_or_init(prepare_venv) {
        Ok(venv) => venv,
        Err(message) => panic!("{message}"),
    }
}

fn prepare_venv() -> Result<Venv, String> {
    let build_version = pyfcgi::python::BUILD_PYTHON_VERSION;
    let dir = if let Some(dir) = std::env::var_os("PYFCGI_E2E_VENV") {
        let dir = PathBuf::from(dir);
        announce(&format!(
            "using PYFCGI_E2E_VENV={} as it is (its bin/pyfcgi must be built for Python {build_version})",
            dir.display()
        ));
        dir
    } else {
        // target/<profile>/deps/apps_e2e-HASH -> target/
        let target = super::target_profile_dir()
            .parent()
            .map(Path::to_path_buf)
            .ok_or("cannot find the target directory")?;
        let dir = target.join(format!("e2e-venv-{build_version}"));
        let script = manifest_dir().join("tests/e2e/prepare_venv.sh");
        let binary = env!("CARGO_BIN_EXE_pyfcgi");
        announce(&format!(
            "preparing {} for Python {build_version} ({}) with this build's pyfcgi ({binary})",
            dir.display(),
            pyfcgi::python::BUILD_PYTHON
        ));
        let started = Instant::now();
        let output = Command::new("bash")
            .arg(&script)
            .arg(pyfcgi::python::BUILD_PYTHON)
            .arg(&dir)
            .arg(binary)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if !output.status.success() {
            return Err(format!(
                "preparing the venv failed ({}): bash {} {} {} {binary}\n{text}",
                output.status,
                script.display(),
                pyfcgi::python::BUILD_PYTHON,
                dir.display()
            ));
        }
        announce(&format!("venv ready in {:?}: {}", started.elapsed(), text.trim()));
        dir
    };
    let dir = dir.canonicalize().map_err(|e| format!("venv {}: {e}", dir.display()))?;
    let pyfcgi = dir.join("bin/pyfcgi");
    let python = dir.join("bin/python");
    for file in [&pyfcgi, &python] {
        if !file.is_file() {
            return Err(format!(
                "{} is missing: prepare the venv with `bash tests/e2e/prepare_venv.sh PYTHON {}`",
                file.display(),
                dir.display()
            ));
        }
    }
    let output = Command::new(&python)
        .args(["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    let python_version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !python_version.starts_with(&format!("{build_version}.")) {
        return Err(format!(
            "the venv {} is for Python {python_version}, but this build links Python {build_version}",
            dir.display()
        ));
    }
    announce(&format!(
        "Python {python_version}, venv {}, pyfcgi {} (test binary built for Python {build_version})",
        dir.display(),
        pyfcgi.display()
    ));
    Ok(Venv {
        dir,
        pyfcgi,
        python_version,
    })
}
