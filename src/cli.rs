//! The `pyfcgi` command line: serve a WSGI application over FastCGI (the default, which is what a web server
//! runs), `check` a configuration exactly as a request would resolve it, or register with IIS (`enable`,
//! `disable`). A library function so that both the Unix `pyfcgi` binary and, on Windows, `pyfcgi_core.dll` (loaded
//! by the `pyfcgi.exe` launcher once it has found Python) run the same code.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use pyo3::prelude::*;
use tracing::{error, info, warn};

use crate::config::args::SettingArgs;
use crate::config::{
    process_env, report, startup, table, CliOverrides, ConfigErrors, KeyCase, PathListStyle, Settings,
};
use crate::dispatch::AppHandler;
use crate::iis;
use crate::launch::{self, ServeOptions};
use crate::python::{self, StartOptions};
use crate::server::Shutdown;
use crate::wsgi::AppLoader;

/// Where the Windows launcher found the Python DLL before loading `pyfcgi_core.dll` (`None` where the binary
/// links Python itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonLocation {
    /// The `python3XY.dll` that was loaded.
    pub dll: PathBuf,
    /// How it was found, in words (e.g. ``home` in C:\site\.venv\pyvenv.cfg`).
    pub found_by: String,
    /// Found through the caller's environment (`PYFCGI_PYTHON_HOME`, `PYTHONHOME`, `VIRTUAL_ENV`, `PATH`), which
    /// IIS will not have: `enable` then records the folder as `PYFCGI_PYTHON_HOME` for the registration.
    pub from_environment: bool,
    /// The base interpreter, when the launcher knows it: CPython's program name when no venv is in use.
    pub program: Option<PathBuf>,
}

#[derive(Parser)]
#[command(
    name = "pyfcgi",
    version = concat!(env!("CARGO_PKG_VERSION"), " (for Python ", env!("PYFCGI_BUILD_PYTHON_VERSION"), ")"),
    about = "Run Python WSGI applications under IIS and any FastCGI web server",
    after_help = "Each setting's flag overrides its web.config appSetting, which overrides its environment \
                  variable. `pyfcgi check` shows every setting, its value and where it came from."
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: SettingArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the application (the default when no command is given).
    Serve(SettingArgs),
    /// Resolve the configuration as a request would, import the application, and report what is wrong.
    Check {
        #[command(flatten)]
        settings: SettingArgs,
        #[command(flatten)]
        access: iis::access::AsArgs,
    },
    /// Register this executable as an IIS FastCGI application (like wfastcgi-enable) and print the
    /// scriptProcessor value for the handler mapping.
    Enable(IisArgs),
    /// Remove the IIS FastCGI registration made by `enable` (like wfastcgi-disable).
    Disable(IisArgs),
    /// Read the IIS configuration (applicationHost.config, web.config files, <location> tags) as IIS does and
    /// report what makes Python sites fail or misbehave, with file, line and fix. Read-only.
    Doctor(iis::doctor::DoctorArgs),
    /// Print the README's settings table, generated from the settings table (for maintainers).
    #[command(hide = true)]
    SettingsTable,
}

#[derive(Args)]
struct IisArgs {
    /// Print the appcmd commands instead of running them.
    #[arg(long)]
    dry_run: bool,
    /// The executable to register (default: this one).
    #[arg(long, value_name = "PATH")]
    exe: Option<PathBuf>,
    /// Seconds IIS waits after signalling the shutdown event before it kills the process.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    signal_before_terminate_seconds: u32,
    /// Requests after which IIS recycles a process (IIS default 200).
    #[arg(long, value_name = "N")]
    instance_max_requests: Option<u32>,
    /// Most processes IIS starts; each serves one request at a time (0 = automatic).
    #[arg(long, value_name = "N")]
    max_instances: Option<u32>,
    /// Seconds without any output before IIS kills a request (raise it for long streams).
    #[arg(long, value_name = "SECONDS")]
    activity_timeout: Option<u32>,
    /// An environment variable for the FastCGI application, NAME=VALUE (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    environment: Vec<String>,
    /// appcmd.exe and any leading arguments (e.g. IIS Express's appcmd with /apphostconfig:...), as
    /// wfastcgi-enable accepted them. Default: %SystemRoot%\system32\inetsrv\appcmd.exe.
    #[arg(trailing_var_arg = true, value_name = "APPCMD")]
    appcmd: Vec<String>,
}

/// Starts the interpreter with the venv the start-up settings name.
fn start_python(venv: Option<PathBuf>, location: Option<&PythonLocation>) -> anyhow::Result<python::PythonInfo> {
    let program = location.and_then(|l| l.program.clone());
    let info = python::start(&StartOptions { venv, program }).context("cannot start the embedded Python")?;
    info!(
        version = %info.version.split_whitespace().next().unwrap_or(""),
        executable = %info.executable,
        prefix = %info.prefix,
        venv = %info.venv.as_ref().map(|v| format!("{} ({})", v.root.display(), v.found_by)).unwrap_or_else(|| "none".into()),
        dll = %location.map(|l| format!("{} ({})", l.dll.display(), l.found_by)).unwrap_or_else(|| "linked".into()),
        "Python started"
    );
    Ok(info)
}

/// The settings in effect at start-up, resolved once: web.config is part of them where the application root is
/// known now (everywhere but under IIS without PYFCGI_APP_ROOT).
fn resolve_start_up(cli: &CliOverrides) -> startup::StartUp {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    startup::resolve(
        cli,
        &process_env,
        KeyCase::native(),
        PathListStyle::native(),
        cfg!(windows),
        &cwd,
    )
}

fn serve(args: SettingArgs, python: Option<&PythonLocation>) -> anyhow::Result<()> {
    let cli = args.overrides;
    let start = resolve_start_up(&cli);
    crate::logging::init(&start.settings.log_filter());
    if let Some(err) = &start.web_config_error {
        warn!(%err, "web.config cannot be read at start-up; start-up settings come from the command line and the environment");
    }
    if !start.fatal.is_empty() {
        anyhow::bail!("invalid start-up settings:\n{}", ConfigErrors(start.fatal));
    }
    let options = ServeOptions::from_settings(&start.settings);
    let loader = AppLoader::new(cli, options.workers > 1).serving(start.web_config.clone());
    // Reported through the loader, which opens it again when it loads the app: one report per path.
    loader.open_log(&start.settings, &start.app_root);
    info!(
        version = env!("CARGO_PKG_VERSION"),
        pid = std::process::id(),
        "pyfcgi starting"
    );
    start_python(start.settings.get(&table::VENV).value.clone(), python)?;
    let handler = AppHandler::new(loader).context("cannot prepare the application handler")?;
    // Under IIS the application root arrives with the first request (APPL_PHYSICAL_PATH); elsewhere everything
    // is known now, and loading early makes the first request fast and start-up errors visible at once.
    if start.app_root_known {
        Python::attach(|py| {
            let _ = handler.prepare(py, None);
        });
    }
    let mut options = options;
    if handler.is_asgi() && options.workers < options.max_conns {
        // ASGI worker threads only carry I/O for requests the event loop runs (no GIL): one per connection lets
        // a process hold as many slow requests as the web server sends, up to --max-conns.
        info!(
            threads = options.max_conns,
            "ASGI: one I/O thread per connection, up to --max-conns"
        );
        options.workers = options.max_conns;
    }
    let handler = Arc::new(handler);
    let served = launch::serve(&options, handler.clone(), Shutdown::new());
    handler.shutdown(std::time::Duration::from_secs(options.shutdown_timeout));
    crate::logging::flush();
    served?;
    Python::attach(|py| {
        // The interpreter is not finalized (application threads may still run), but atexit handlers, which
        // flush logs and close pools, get their chance.
        if let Err(err) = py.import("atexit").and_then(|m| m.call_method0("_run_exitfuncs")) {
            error!(%err, "atexit handlers failed");
        }
    });
    Ok(())
}

fn check(args: SettingArgs, access: iis::access::AsArgs, python: Option<&PythonLocation>) -> anyhow::Result<bool> {
    crate::logging::init("warn");
    let cli = args.overrides;
    let loader = AppLoader::new(cli.clone(), false);
    println!("pyfcgi {}", env!("CARGO_PKG_VERSION"));
    let (settings, app_root) = match loader.resolve_settings(None) {
        Ok(resolved) => resolved,
        Err(failure) => {
            println!("\nConfiguration error:\n{}", failure.detail);
            return Ok(false);
        }
    };
    println!("Application root: {}", app_root.display());
    let web_config = match crate::config::find_web_config(&app_root) {
        Ok(Some(path)) => {
            println!("web.config: {}", path.display());
            Some(path)
        }
        Ok(None) => {
            println!("web.config: none in the application root");
            None
        }
        Err(err) => {
            println!("web.config: {err}");
            None
        }
    };
    let iis = cfg!(windows);
    let (without_web, _) =
        Settings::resolve_lenient(&cli, None, &process_env, KeyCase::native(), PathListStyle::native());
    let read_at_start_up = web_config
        .as_deref()
        .filter(|_| startup::app_root_known_for_check(&without_web, iis));
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("pyfcgi.exe"));
    // A web.config means an IIS-style site: say what IIS's process model means for it.
    print!(
        "{}",
        report::check_report(&settings, read_at_start_up, &exe, iis, web_config.is_some())
    );
    let info = start_python(settings.get(&table::VENV).value.clone(), python)?;
    println!("\nPython {}", info.version.replace('\n', " "));
    if let Some(location) = python {
        println!("  library: {} (found by {})", location.dll.display(), location.found_by);
    }
    println!("  executable: {}", info.executable);
    println!("  prefix: {}", info.prefix);
    match &info.venv {
        Some(venv) => println!(
            "  virtual environment: {} (found by {})",
            venv.root.display(),
            venv.found_by
        ),
        None => println!("  virtual environment: none"),
    }
    let access_ok = match &access.identity {
        Some(identity) => iis::access::print_check_as(
            identity,
            &iis::access::Resolved {
                python_home: python
                    .and_then(|l| l.dll.parent())
                    .or(Some(std::path::Path::new(&info.prefix))),
                venv: info.venv.as_ref().map(|v| v.root.as_path()),
                app_root: &app_root,
                web_config: web_config.as_deref(),
                wsgi_log: settings.get(&table::WSGI_LOG).value.as_deref(),
            },
        )
        .with_context(|| format!("check --as {identity:?}"))?,
        None => true,
    };
    let ok = Python::attach(|py| match loader.get(py, None) {
        Ok(app) => {
            let path = py
                .import("sys")
                .and_then(|s| s.getattr("path"))
                .map(|p| p.to_string())
                .unwrap_or_default();
            println!("  sys.path: {path}");
            let repr = app.callable.bind(py).repr().map(|r| r.to_string()).unwrap_or_default();
            println!(
                "\nWSGI_HANDLER {:?} resolves to {repr}",
                settings.get(&table::WSGI_HANDLER).value.as_deref().unwrap_or("")
            );
            match crate::asgi::app::detect(
                py,
                app.callable.bind(py),
                app.settings.get(&crate::config::table::INTERFACE).value,
            ) {
                Ok((asgi, reason)) => println!("Interface: {} ({reason})", if asgi { "ASGI 3" } else { "WSGI" }),
                Err(err) => println!("Interface: cannot tell ({err}); it would be served as WSGI"),
            }
            println!("OK: the application imports and is callable.");
            true
        }
        Err(failure) => {
            println!("\n{}:\n\n{}", failure.context, failure.detail);
            false
        }
    });
    Ok(ok && access_ok)
}

fn iis_register(args: IisArgs, enable: bool, python: Option<&PythonLocation>) -> anyhow::Result<bool> {
    let exe = match args.exe {
        Some(exe) => exe,
        None => std::env::current_exe().context("cannot tell where this executable is")?,
    };
    let mut environment = args
        .environment
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .with_context(|| format!("--env {pair:?} is not NAME=VALUE"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(home) = python_home_to_record(python, &environment) {
        println!(
            "Python was found through this shell's environment, which IIS does not have: recording \
             PYFCGI_PYTHON_HOME={home} for the FastCGI application."
        );
        environment.push(("PYFCGI_PYTHON_HOME".into(), home));
    }
    let registration = iis::Registration {
        exe,
        signal_before_terminate_seconds: args.signal_before_terminate_seconds,
        instance_max_requests: args.instance_max_requests,
        max_instances: args.max_instances,
        activity_timeout: args.activity_timeout,
        environment,
    };
    let appcmd = if args.appcmd.is_empty() {
        vec![iis::default_appcmd()]
    } else {
        args.appcmd.clone()
    };
    let commands = if enable {
        registration.enable_commands()
    } else {
        vec![registration.disable_command()]
    };
    if args.dry_run {
        for command in &commands {
            println!("{}", iis::display_command(&appcmd, command));
        }
    } else {
        if !cfg!(windows) {
            anyhow::bail!(
                "IIS registration runs appcmd.exe, which exists only on Windows; use --dry-run to see the commands"
            );
        }
        if !std::path::Path::new(&appcmd[0]).is_file() {
            anyhow::bail!("IIS configuration tool appcmd.exe was not found at {:?}", appcmd[0]);
        }
        for (index, command) in commands.iter().enumerate() {
            let status = std::process::Command::new(&appcmd[0])
                .args(&appcmd[1..])
                .args(command)
                .status()?;
            // The first enable command removes an earlier registration, which may not exist.
            let may_fail = enable && index == 0;
            if !status.success() && !may_fail {
                eprintln!(
                    "An error occurred running the command:\n{}\nEnsure your user has sufficient privileges and try again.",
                    iis::display_command(&appcmd, command)
                );
                return Ok(false);
            }
        }
    }
    let script_processor = registration.script_processor();
    if enable {
        println!(
            "\n\"{script_processor}\" can now be used as a FastCGI script processor. Handler mapping for web.config:"
        );
        println!("  {}", registration.handler_snippet());
    } else {
        println!("\n\"{script_processor}\" is no longer registered for use with FastCGI");
    }
    Ok(true)
}

/// The Python folder `enable` should record as `PYFCGI_PYTHON_HOME`: the one the launcher found through this
/// shell's environment (a venv's `pyvenv.cfg` next to the executable needs nothing), unless `--env` sets it.
fn python_home_to_record(python: Option<&PythonLocation>, environment: &[(String, String)]) -> Option<String> {
    let location = python.filter(|l| l.from_environment)?;
    if environment
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("PYFCGI_PYTHON_HOME"))
    {
        return None;
    }
    Some(location.dll.parent()?.display().to_string())
}

/// Runs the command line `args` (the program name first, as `std::env::args_os()` gives it) and returns the
/// process exit status. Argument errors and `--help` print and exit, as clap does.
pub fn run<I, T>(args: I, python: Option<&PythonLocation>) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    let result = match cli.command {
        None => serve(cli.serve, python).map(|()| true),
        Some(Command::Serve(args)) => serve(args, python).map(|()| true),
        Some(Command::Check { settings, access }) => match access.ensure_supported() {
            Ok(()) => check(settings, access, python),
            Err(why) => Err(anyhow::anyhow!(why)),
        },
        Some(Command::Enable(args)) => iis_register(args, true, python),
        Some(Command::Disable(args)) => iis_register(args, false, python),
        Some(Command::Doctor(args)) => iis::doctor::command(args),
        Some(Command::SettingsTable) => {
            print!("{}", crate::config::table::readme_table());
            Ok(true)
        }
    };
    match result {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(err) => {
            error!("{err:#}");
            eprintln!("pyfcgi: {err:#}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(from_environment: bool) -> PythonLocation {
        PythonLocation {
            dll: PathBuf::from("py311").join("python311.dll"),
            found_by: "PATH".into(),
            from_environment,
            program: None,
        }
    }

    #[test]
    fn enable_records_a_python_home_found_through_the_environment_only() {
        assert_eq!(python_home_to_record(Some(&location(true)), &[]), Some("py311".into()));
        assert_eq!(python_home_to_record(Some(&location(false)), &[]), None);
        assert_eq!(python_home_to_record(None, &[]), None);
        let explicit = [("pyfcgi_python_home".to_owned(), r"C:\Other".to_owned())];
        assert_eq!(python_home_to_record(Some(&location(true)), &explicit), None);
    }
}
