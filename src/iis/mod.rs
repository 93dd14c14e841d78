//! Registering pyfcgi with IIS, as `wfastcgi-enable`/`wfastcgi-disable` did: the `appcmd` commands that add or
//! remove the FastCGI application (with `signalBeforeTerminateSeconds`, `instanceMaxRequests`, `maxInstances`,
//! and environment variables), the `scriptProcessor` string to put in the handler mapping, and the web.config
//! handler snippet. Building the commands is pure and tested everywhere; running them happens only on Windows,
//! and `--dry-run` prints them instead.

pub mod access;
pub mod doctor;

use std::path::{Path, PathBuf};

/// What to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Full path of pyfcgi.exe.
    pub exe: PathBuf,
    pub signal_before_terminate_seconds: u32,
    pub instance_max_requests: Option<u32>,
    pub max_instances: Option<u32>,
    pub activity_timeout: Option<u32>,
    /// `environmentVariables` of the FastCGI application (the only IIS-native way to pass settings).
    pub environment: Vec<(String, String)>,
}

/// The default appcmd location (written with backslashes so `--dry-run` on any OS shows the Windows path).
pub fn default_appcmd() -> String {
    let root = std::env::var("SystemRoot").unwrap_or_else(|_| r"C:\Windows".to_owned());
    format!(r"{root}\system32\inetsrv\appcmd.exe")
}

/// wfastcgi quotes paths with spaces, and the quotes become part of the stored `fullPath`; the handler's
/// `scriptProcessor` must match it exactly.
pub fn quoted(path: &Path) -> String {
    let text = path.display().to_string();
    if text.contains(' ') {
        format!("\"{text}\"")
    } else {
        text
    }
}

/// appcmd attribute values are single-quoted; a single quote inside is doubled.
fn attr(value: &str) -> String {
    value.replace('\'', "''")
}

impl Registration {
    /// The key IIS identifies the application by: `fullPath` and an empty `arguments`.
    fn key(&self) -> String {
        format!("fullPath='{}',arguments=''", attr(&quoted(&self.exe)))
    }

    /// The handler mapping's `scriptProcessor` value.
    pub fn script_processor(&self) -> String {
        quoted(&self.exe)
    }

    /// appcmd argument lists, in order: remove any earlier registration (so `enable` can be run again), add the
    /// application, then each environment variable.
    pub fn enable_commands(&self) -> Vec<Vec<String>> {
        let section = "/section:system.webServer/fastCgi".to_owned();
        let mut add = format!(
            "/+[{},signalBeforeTerminateSeconds='{}'",
            self.key(),
            self.signal_before_terminate_seconds
        );
        if let Some(n) = self.instance_max_requests {
            add.push_str(&format!(",instanceMaxRequests='{n}'"));
        }
        if let Some(n) = self.max_instances {
            add.push_str(&format!(",maxInstances='{n}'"));
        }
        if let Some(n) = self.activity_timeout {
            add.push_str(&format!(",activityTimeout='{n}'"));
        }
        add.push(']');
        let mut commands = vec![
            vec![
                "set".into(),
                "config".into(),
                section.clone(),
                format!("/-[{}]", self.key()),
            ],
            vec!["set".into(), "config".into(), section.clone(), add],
        ];
        for (name, value) in &self.environment {
            commands.push(vec![
                "set".into(),
                "config".into(),
                section.clone(),
                format!(
                    "/+[{}].environmentVariables.[name='{}',value='{}']",
                    self.key(),
                    attr(name),
                    attr(value)
                ),
            ]);
        }
        commands
    }

    pub fn disable_command(&self) -> Vec<String> {
        vec![
            "set".into(),
            "config".into(),
            "/section:system.webServer/fastCgi".into(),
            format!("/-[{}]", self.key()),
        ]
    }

    /// The web.config handler entry that routes a site to this registration.
    pub fn handler_snippet(&self) -> String {
        format!(
            "<add name=\"pyfcgi\" path=\"*\" verb=\"*\" modules=\"FastCgiModule\" scriptProcessor=\"{}\" \
             resourceType=\"Unspecified\" requireAccess=\"Script\" responseBufferLimit=\"0\" />",
            self.script_processor().replace('"', "&quot;")
        )
    }
}

/// The one appcmd line that adds environment variable `name` to the FastCGI application `exe` registered by
/// `enable` (`check` and the log print it for a start-up setting found in web.config).
pub fn environment_variable_command(exe: &Path, name: &str, value: &str) -> String {
    format!(
        "%windir%\\system32\\inetsrv\\appcmd.exe set config -section:system.webServer/fastCgi \
         /+\"[fullPath='{}',arguments=''].environmentVariables.[name='{}',value='{}']\" /commit:apphost",
        attr(&quoted(exe)).replace('"', "\\\""),
        attr(name),
        attr(value)
    )
}

/// Renders a command line for display (`--dry-run`), quoting arguments with spaces as cmd.exe would need.
pub fn display_command(appcmd: &[String], args: &[String]) -> String {
    appcmd
        .iter()
        .chain(args)
        .map(|a| {
            if a.contains(' ') || a.contains('[') {
                format!("\"{}\"", a.replace('"', "\\\""))
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(exe: &str) -> Registration {
        Registration {
            exe: PathBuf::from(exe),
            signal_before_terminate_seconds: 30,
            instance_max_requests: Some(10000),
            max_instances: Some(4),
            activity_timeout: None,
            environment: vec![("PATH".into(), r"C:\Python311;%PATH%".into())],
        }
    }

    #[test]
    fn enable_is_idempotent_remove_then_add() {
        let commands = registration(r"C:\site\.venv\Scripts\pyfcgi.exe").enable_commands();
        assert_eq!(commands.len(), 3);
        assert_eq!(
            commands[0][3],
            r"/-[fullPath='C:\site\.venv\Scripts\pyfcgi.exe',arguments='']"
        );
        assert_eq!(
            commands[1][3],
            r"/+[fullPath='C:\site\.venv\Scripts\pyfcgi.exe',arguments='',signalBeforeTerminateSeconds='30',instanceMaxRequests='10000',maxInstances='4']"
        );
        assert_eq!(
            commands[2][3],
            r"/+[fullPath='C:\site\.venv\Scripts\pyfcgi.exe',arguments=''].environmentVariables.[name='PATH',value='C:\Python311;%PATH%']"
        );
        assert!(commands
            .iter()
            .all(|c| c[..3] == ["set", "config", "/section:system.webServer/fastCgi"]));
    }

    #[test]
    fn paths_with_spaces_are_quoted_like_wfastcgi() {
        let reg = registration(r"C:\Program Files\pyfcgi\pyfcgi.exe");
        assert_eq!(reg.script_processor(), r#""C:\Program Files\pyfcgi\pyfcgi.exe""#);
        assert!(reg.disable_command()[3].starts_with(r#"/-[fullPath='"C:\Program Files\pyfcgi\pyfcgi.exe"'"#));
        assert!(reg
            .handler_snippet()
            .contains(r#"scriptProcessor="&quot;C:\Program Files\pyfcgi\pyfcgi.exe&quot;""#));
    }

    #[test]
    fn single_quotes_are_doubled() {
        let mut reg = registration(r"C:\O'Brien\pyfcgi.exe");
        reg.environment = vec![("X".into(), "it's".into())];
        let commands = reg.enable_commands();
        assert!(commands[1][3].contains(r"fullPath='C:\O''Brien\pyfcgi.exe'"));
        assert!(commands[2][3].ends_with("value='it''s']"));
    }

    #[test]
    fn display_quotes_bracketed_arguments() {
        let shown = display_command(
            &[r"C:\Windows\system32\inetsrv\appcmd.exe".into()],
            &["set".into(), "/+[a='b c']".into()],
        );
        assert_eq!(shown, r#"C:\Windows\system32\inetsrv\appcmd.exe set "/+[a='b c']""#);
    }
}
