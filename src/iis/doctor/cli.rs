//! The `pyfcgi doctor` command line: its arguments and the run from arguments to output and exit status (0 when
//! nothing was found, 1 with findings or when the configuration cannot be read). Kept here so `src/cli.rs` only
//! names the subcommand.

use std::collections::HashMap;

use anyhow::Context as _;
use clap::Args;

use super::checks::Limits;
use super::{default_apphost, machine_memory_mb, run, Options, Target};

#[derive(Args, Debug, Clone)]
pub struct DoctorArgs {
    /// applicationHost.config to read (default: %windir%\System32\inetsrv\config\applicationHost.config).
    #[arg(long, value_name = "FILE")]
    apphost: Option<String>,
    /// The application's folder (matched against the sites' physical paths; without a match only its own
    /// web.config is read).
    #[arg(long, value_name = "DIR", conflicts_with = "site")]
    app_root: Option<String>,
    /// A site of applicationHost.config ("Default Web Site", every application in it) or one application of it
    /// ("Default Web Site/app"). Without --site and --app-root, every site with a FastCGI handler is checked.
    #[arg(long, value_name = "NAME")]
    site: Option<String>,
    /// Print the report as JSON (files read, applications, findings with id, severity, file, line, fix).
    #[arg(long)]
    json: bool,
    /// Memory of one application process in MB, compared with maxInstances and this machine's memory.
    #[arg(long, value_name = "MB", default_value_t = 150)]
    app_memory: u64,
    /// The server's memory in MB (default: this machine's), when the configuration comes from another machine.
    #[arg(long, value_name = "MB")]
    machine_memory: Option<u64>,
    /// The longest response the application streams, in seconds, compared with requestTimeout.
    #[arg(long, value_name = "SECONDS")]
    stream_seconds: Option<u64>,
}

/// Runs the doctor; `Ok(true)` when the configuration is clean.
pub fn command(args: DoctorArgs) -> anyhow::Result<bool> {
    let env: HashMap<String, String> = std::env::vars().collect();
    let apphost = match args.apphost {
        Some(path) => path,
        None => default_apphost(&env)
            .context("cannot tell where applicationHost.config is (%windir% is not set): pass --apphost FILE")?,
    };
    let target = match (args.app_root, args.site) {
        (Some(dir), _) => Target::AppRoot(dir),
        (None, Some(site)) => Target::Site(site),
        (None, None) => Target::All,
    };
    let options = Options {
        apphost,
        target,
        env,
        limits: Limits {
            app_memory_mb: args.app_memory,
            machine_memory_mb: args.machine_memory.or_else(machine_memory_mb),
            stream_seconds: args.stream_seconds,
        },
    };
    let report = run(&options).context("pyfcgi doctor")?;
    if args.json {
        print!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    Ok(report.is_clean())
}
