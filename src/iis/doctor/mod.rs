//! `pyfcgi doctor`: reads the IIS configuration as IIS would (applicationHost.config, the web.config of each
//! level from the site root down to the application, `<location path=...>` tags) and reports each setting that
//! makes a Python site fail or misbehave, with the file, the line, what happens and the fix. This file owns the
//! run: picking the applications to look at (`--app-root`, `--site`, or every site), loading the files once,
//! and handing each application's configuration chain to [`checks`]. Read-only: it opens files for reading and
//! asks whether paths exist, nothing else, so it is safe on a production server. Pure enough to test on Linux
//! (paths in the configuration are Windows paths; see [`model::local_path`]).

pub mod checks;
pub mod cli;
pub mod model;
pub mod report;
pub mod xml;

use std::collections::HashMap;
use std::path::PathBuf;

use checks::{Context, Limits, STATIC_FOLDERS};
pub use cli::{command, DoctorArgs};
use model::{expand, join, local_path, segments, AppHost, Chain};
use report::{Checked, Finding, Report, Severity};
use xml::{ConfigFile, LoadError};

/// Which applications to examine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The application (or folder) at this physical path.
    AppRoot(String),
    /// `Site Name` (all its applications) or `Site Name/app` (one).
    Site(String),
    /// Every application of every site that has a FastCGI handler.
    All,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// applicationHost.config, as a Windows path (or any path this process can open).
    pub apphost: String,
    pub target: Target,
    /// The environment `%NAME%` in configured paths is expanded from (IIS's own: SystemDrive, windir, ...).
    pub env: HashMap<String, String>,
    pub limits: Limits,
}

#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("applicationHost.config has no site named {name:?} (sites: {known})")]
    NoSite { name: String, known: String },
    #[error("site {site:?} has no application or folder {path:?}")]
    NoApplication { site: String, path: String },
}

/// Where IIS keeps applicationHost.config: `%windir%\System32\inetsrv\config\applicationHost.config`.
pub fn default_apphost(env: &HashMap<String, String>) -> Option<String> {
    let windir = lookup(env, "windir").or_else(|| lookup(env, "SystemRoot"))?;
    Some(join(&windir, r"System32\inetsrv\config\applicationHost.config"))
}

/// The physical memory of this machine in MB, where the platform tells.
pub fn machine_memory_mb() -> Option<u64> {
    #[cfg(windows)]
    {
        use windows_sys::Win32::System::SystemInformation::{GlobalMemoryStatusEx, MEMORYSTATUSEX};
        // SAFETY: MEMORYSTATUSEX is plain data; dwLength must be set before the call, which fills the rest.
        unsafe {
            let mut status: MEMORYSTATUSEX = std::mem::zeroed();
            status.dwLength = std::mem::size_of::<MEMORYSTATUSEX>() as u32;
            if GlobalMemoryStatusEx(&mut status) != 0 {
                return Some(status.ullTotalPhys / (1024 * 1024));
            }
        }
        None
    }
    #[cfg(not(windows))]
    {
        let text = std::fs::read_to_string("/proc/meminfo").ok()?;
        let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024)
    }
}

/// Environment names are case-insensitive on Windows, and IIS's are spelled several ways (`windir`, `SystemRoot`).
fn lookup(env: &HashMap<String, String>, name: &str) -> Option<String> {
    env.get(name)
        .or_else(|| env.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
        .cloned()
}

/// An application to examine, before its files are loaded.
struct Planned {
    site: Option<usize>,
    /// URL segments below the site root (for a folder of no site: none).
    url: Vec<String>,
    /// The physical folder of each level from the site root down to the application, expanded.
    levels: Vec<String>,
    explicit: bool,
}

fn normalized(path: &str) -> String {
    path.replace('/', "\\").trim_end_matches('\\').to_lowercase()
}

fn plan(apphost: &AppHost, options: &Options) -> Result<Vec<Planned>, DoctorError> {
    let env = |n: &str| lookup(&options.env, n);
    let levels = |site: &model::Site, url: &[String]| -> Vec<String> {
        (0..=url.len())
            .map(|i| site.physical(&url[..i]).map(|p| expand(&p, &env)).unwrap_or_default())
            .collect()
    };
    let planned = |site: usize, url: Vec<String>, explicit: bool| Planned {
        site: Some(site),
        levels: levels(&apphost.sites[site], &url),
        url,
        explicit,
    };
    match &options.target {
        Target::AppRoot(dir) => {
            let wanted = normalized(&expand(dir, &env));
            for (index, site) in apphost.sites.iter().enumerate() {
                for app in &site.apps {
                    for (vpath, physical) in &app.vdirs {
                        if normalized(&expand(physical, &env)) == wanted {
                            let url = segments(&app.path).into_iter().chain(segments(vpath)).collect();
                            return Ok(vec![planned(index, url, true)]);
                        }
                    }
                }
            }
            Ok(vec![Planned {
                site: None,
                url: Vec::new(),
                levels: vec![expand(dir, &env)],
                explicit: true,
            }])
        }
        Target::Site(spec) => {
            let (name, path) = spec.split_once('/').unwrap_or((spec, ""));
            let index = apphost
                .sites
                .iter()
                .position(|s| s.name.eq_ignore_ascii_case(name))
                .ok_or_else(|| DoctorError::NoSite {
                    name: name.to_owned(),
                    known: apphost
                        .sites
                        .iter()
                        .map(|s| format!("{:?}", s.name))
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            let site = &apphost.sites[index];
            if path.trim_matches('/').is_empty() {
                return Ok(site
                    .apps
                    .iter()
                    .map(|a| planned(index, segments(&a.path), false))
                    .collect());
            }
            let url = segments(path);
            if site.physical(&url).is_none() {
                return Err(DoctorError::NoApplication {
                    site: site.name.clone(),
                    path: path.to_owned(),
                });
            }
            Ok(vec![planned(index, url, true)])
        }
        Target::All => Ok(apphost
            .sites
            .iter()
            .enumerate()
            .flat_map(|(index, site)| site.apps.iter().map(move |a| (index, segments(&a.path))))
            .map(|(index, url)| planned(index, url, false))
            .collect()),
    }
}

/// 500.19 for a configuration file IIS cannot parse.
fn unreadable(error: &LoadError, path: PathBuf) -> Finding {
    Finding {
        id: "config-unreadable",
        severity: Severity::Error,
        file: Some(path),
        line: error.line(),
        problem: error.to_string(),
        effect: "IIS cannot read the configuration: HTTP Error 500.19 \"Configuration file is not well-formed XML\" (0x8007000d) for every request it covers.".into(),
        fix: "correct the XML at that line (an unescaped & or <, a missing closing tag, two root elements).".into(),
    }
}

/// Loads web.config files once each, in the order first needed.
#[derive(Default)]
struct Files {
    loaded: Vec<ConfigFile>,
    /// Normalized folder -> index into `loaded` (None: no web.config, or unreadable).
    by_dir: HashMap<String, Option<usize>>,
    /// Normalized folders whose web.config exists but cannot be parsed.
    unreadable: Vec<String>,
}

impl Files {
    fn load(&mut self, dir: &str, report: &mut Report) {
        let key = normalized(dir);
        if dir.is_empty() || self.by_dir.contains_key(&key) {
            return;
        }
        let found = crate::config::find_web_config(&local_path(dir)).ok().flatten();
        let index = found.and_then(|local| {
            let name = local
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let shown = PathBuf::from(join(dir, &name));
            report.files_read.push(shown.clone());
            match ConfigFile::load(&local, shown.clone()) {
                Ok(file) => {
                    self.loaded.push(file);
                    Some(self.loaded.len() - 1)
                }
                Err(error) => {
                    report.push(unreadable(&error, shown));
                    self.unreadable.push(key.clone());
                    None
                }
            }
        });
        self.by_dir.insert(key, index);
    }

    fn get(&self, dir: &str) -> Option<&ConfigFile> {
        self.by_dir
            .get(&normalized(dir))
            .copied()
            .flatten()
            .map(|i| &self.loaded[i])
    }
}

fn static_dirs(app_dir: &str) -> Vec<(String, String)> {
    STATIC_FOLDERS
        .iter()
        .map(|name| (name.to_string(), join(app_dir, name)))
        .filter(|(_, dir)| local_path(dir).is_dir())
        .collect()
}

/// Reads the configuration and runs every check.
pub fn run(options: &Options) -> Result<Report, DoctorError> {
    let mut report = Report::default();
    let shown = PathBuf::from(&options.apphost);
    let file = match ConfigFile::load(&local_path(&options.apphost), shown.clone()) {
        Ok(file) => file,
        Err(error @ LoadError::Io { .. }) => return Err(error.into()),
        Err(error) => {
            report.files_read.push(shown.clone());
            report.push(unreadable(&error, shown));
            return Ok(report);
        }
    };
    report.files_read.push(shown);
    let apphost = AppHost::new(file);
    let planned = plan(&apphost, options)?;
    let mut files = Files::default();
    for target in &planned {
        for dir in &target.levels {
            files.load(dir, &mut report);
        }
        if let Some(app_dir) = target.levels.last() {
            for (_, dir) in static_dirs(app_dir) {
                files.load(&dir, &mut report);
            }
        }
    }
    for target in &planned {
        let site = target.site.map(|i| &apphost.sites[i]);
        let physical = target.levels.last().cloned().unwrap_or_default();
        let chain = Chain {
            apphost: &apphost,
            site: site.map(|s| s.name.as_str()),
            url: target.url.clone(),
            web_configs: target.levels.iter().map(|d| files.get(d)).collect(),
        };
        let static_chains = static_dirs(&physical)
            .into_iter()
            .map(|(name, dir)| {
                let mut extended = chain.clone();
                extended.url.push(name.clone());
                extended.web_configs.push(files.get(&dir));
                (name, extended)
            })
            .collect();
        let config_path = site.map(|s| {
            std::iter::once(s.name.clone())
                .chain(target.url.iter().cloned())
                .collect::<Vec<_>>()
                .join("/")
        });
        let pool = site.and_then(|s| s.application(&target.url)).map(|a| a.pool.clone());
        let identity = pool.as_ref().map(|p| {
            apphost
                .pools
                .iter()
                .find(|x| x.name.eq_ignore_ascii_case(p))
                .map(|x| x.identity.clone())
                .unwrap_or_else(|| format!(r"IIS AppPool\{p}"))
        });
        let context = Context {
            apphost: &apphost,
            chain,
            static_chains,
            config_path: config_path.clone(),
            physical: physical.clone(),
            env: &options.env,
            limits: &options.limits,
            explicit: target.explicit,
        };
        // Checking what IIS would do without the file would report consequences of the one real problem.
        let skipped = if files.unreadable.contains(&normalized(&physical)) {
            Some("its web.config cannot be read (see the finding)".to_owned())
        } else {
            checks::run(&context, &mut report)
        };
        report.checked.push(Checked {
            name: config_path.unwrap_or_else(|| physical.clone()),
            physical,
            pool,
            identity,
            skipped,
        });
    }
    Ok(report)
}
