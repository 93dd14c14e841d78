//! A fake IIS: starts a FastCGI application exactly as IIS's FastCGI module does (named pipe or listening socket
//! as the stdin handle, invalid stdout and stderr, `_FCGI_X_PIPE_`, `_FCGI_SHUTDOWN_EVENT_`), talks to it as IIS
//! would (server variables, keep-conn, STDIN in pieces, reconnects, the shutdown event, closing the pipe), and
//! reports one line per scenario and a summary line `fake_iis: N passed, M failed`.
//!
//! The scenarios only need the "echo contract" (see `scenarios.rs`), so the same run works against the Rust echo
//! responder and against `pyfcgi.exe` with the WSGI fixture app:
//!
//! ```text
//! fake_iis.exe [--mode overlapped|sync|tcp]... [--scenario NAME]... [--env K=V]... [--app-setting K=V]...
//!              [--app-dir DIR] [--log-dir DIR] [--watchdog-secs N] [--wsgi-fixture] [--list] -- APP.EXE [ARGS...]
//! ```
//! `--env` are the FastCGI application's `<environmentVariables>`; `--app-setting` go into `<appSettings>` of the
//! `web.config` written to the application directory (`APPL_PHYSICAL_PATH`). `--wsgi-fixture` says the
//! application is `pyfcgi.exe` serving `tests/fixtures/flask_echo`, which adds the error scenarios
//! (`app_exception`, `bad_handler`).
//! Windows only (run it under Wine on Linux; see `.ci/windows.sh`).

#[cfg(windows)]
mod fcgi;
#[cfg(windows)]
mod iis;
#[cfg(windows)]
mod scenarios;

#[cfg(not(windows))]
fn main() {
    eprintln!("fake_iis runs on Windows (or under Wine): build it with --target x86_64-pc-windows-gnu");
    std::process::exit(2);
}

#[cfg(windows)]
fn main() {
    std::process::exit(windows_main::run());
}

#[cfg(windows)]
mod windows_main {
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    use clap::Parser;

    use crate::iis::{Launch, Mode};
    use crate::scenarios::{physical_path, web_config, Site, SCENARIOS};

    #[derive(Parser)]
    #[command(about = "Starts a FastCGI application as IIS does and runs IIS-like scenarios against it")]
    struct Args {
        /// Pipe/socket modes to run: overlapped, sync, tcp (default: all three).
        #[arg(long = "mode")]
        modes: Vec<String>,
        /// Scenarios to run (default: all; see --list).
        #[arg(long = "scenario")]
        scenarios: Vec<String>,
        /// An environment variable of the FastCGI application (IIS `<environmentVariables>`), NAME=VALUE.
        #[arg(long = "env", value_parser = pair)]
        env: Vec<(String, String)>,
        /// A key of `<appSettings>` in the application's web.config, NAME=VALUE.
        #[arg(long = "app-setting", value_parser = pair)]
        app_settings: Vec<(String, String)>,
        /// The application directory (APPL_PHYSICAL_PATH); default: a new folder in %TEMP%.
        #[arg(long)]
        app_dir: Option<PathBuf>,
        /// Where each scenario's WSGI_LOG goes (printed when the scenario fails).
        #[arg(long)]
        log_dir: Option<PathBuf>,
        /// Seconds after which a scenario's process is terminated.
        #[arg(long, default_value_t = 30)]
        watchdog_secs: u64,
        /// The application is pyfcgi.exe serving tests/fixtures/flask_echo: also run the scenarios that need it
        /// (an exception in the application, a WSGI_HANDLER that cannot be imported).
        #[arg(long)]
        wsgi_fixture: bool,
        /// List the scenarios and exit.
        #[arg(long)]
        list: bool,
        /// The application and its arguments (the handler's `scriptProcessor` is `exe|arguments`).
        #[arg(last = true)]
        command: Vec<String>,
    }

    fn pair(s: &str) -> Result<(String, String), String> {
        s.split_once('=')
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .ok_or_else(|| format!("`{s}` is not NAME=VALUE"))
    }

    pub fn run() -> i32 {
        let args = Args::parse();
        if args.list {
            for s in SCENARIOS {
                let modes: Vec<_> = s.modes.iter().map(|m| m.name()).collect();
                let only = if s.wsgi_only { " (--wsgi-fixture only)" } else { "" };
                println!("{:<18} [{}] {}{only}", s.name, modes.join(","), s.about);
            }
            return 0;
        }
        let Some((exe, rest)) = args.command.split_first() else {
            eprintln!("fake_iis: give the application after `--` (see --help)");
            return 2;
        };
        let modes: Vec<Mode> = if args.modes.is_empty() {
            vec![Mode::Overlapped, Mode::Sync, Mode::Tcp]
        } else {
            let mut modes = Vec::new();
            for m in &args.modes {
                modes.push(match m.as_str() {
                    "overlapped" => Mode::Overlapped,
                    "sync" => Mode::Sync,
                    "tcp" => Mode::Tcp,
                    other => {
                        eprintln!("fake_iis: unknown mode {other}");
                        return 2;
                    }
                });
            }
            modes
        };
        for name in &args.scenarios {
            if !SCENARIOS.iter().any(|s| s.name == name) {
                eprintln!("fake_iis: unknown scenario {name} (see --list)");
                return 2;
            }
        }
        let app_dir = args
            .app_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join(format!("fake-iis-{}", std::process::id())));
        if let Err(e) = std::fs::create_dir_all(&app_dir) {
            eprintln!("fake_iis: cannot create {}: {e}", app_dir.display());
            return 2;
        }
        let script_processor = std::iter::once(exe.clone())
            .chain(rest.iter().cloned())
            .collect::<Vec<_>>()
            .join("|");
        if !args.app_settings.is_empty() {
            let path = app_dir.join("web.config");
            if let Err(e) = std::fs::write(&path, web_config(&args.app_settings, &script_processor)) {
                eprintln!("fake_iis: cannot write {}: {e}", path.display());
                return 2;
            }
        }
        if let Some(dir) = &args.log_dir {
            let _ = std::fs::create_dir_all(dir);
        }
        let site = Site {
            launch: Launch {
                exe: exe.clone(),
                args: rest.to_vec(),
                env: args.env.clone(),
                log_dir: args.log_dir.clone(),
                watchdog: Duration::from_secs(args.watchdog_secs),
            },
            physical_path: physical_path(&app_dir),
            app_dir,
            md_path: "/LM/W3SVC/1/ROOT".into(),
            app_settings: args.app_settings.clone(),
            script_processor,
            wsgi_fixture: args.wsgi_fixture,
        };

        let (mut passed, mut failed) = (0, 0);
        let all = Instant::now();
        for mode in &modes {
            for scenario in SCENARIOS {
                if !scenario.modes.contains(mode)
                    || (scenario.wsgi_only && !site.wsgi_fixture)
                    || (!args.scenarios.is_empty() && !args.scenarios.iter().any(|n| n == scenario.name))
                {
                    continue;
                }
                let started = Instant::now();
                let outcome = (scenario.run)(&site, *mode);
                let ms = started.elapsed().as_millis();
                let label = format!("{}/{}", mode.name(), scenario.name);
                match outcome {
                    Ok(detail) => {
                        passed += 1;
                        println!("PASS {label:<28} {ms:>6} ms  {detail}");
                    }
                    Err(why) => {
                        failed += 1;
                        println!("FAIL {label:<28} {ms:>6} ms  {why}");
                        if let Some(dir) = &args.log_dir {
                            let log = dir.join(format!("{}-{}.log", mode.name(), scenario.name));
                            if let Ok(text) = std::fs::read_to_string(&log) {
                                for line in text.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev() {
                                    println!("     | {line}");
                                }
                            }
                        }
                    }
                }
            }
        }
        println!(
            "fake_iis: {passed} passed, {failed} failed ({} ms)",
            all.elapsed().as_millis()
        );
        if failed == 0 && passed > 0 {
            0
        } else {
            1
        }
    }
}
