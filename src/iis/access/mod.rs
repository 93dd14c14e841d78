//! `pyfcgi check --as IDENTITY`: can the application pool identity read the Python installation, the venv and
//! the application, and write the WSGI_LOG file? Wrong permissions are the most common reason a Python site on
//! IIS answers "The FastCGI process exited unexpectedly". This file owns the decision, pure and tested on every
//! platform: given a folder's or file's DACL (its access-control entries, as SID strings and masks) and the SIDs
//! in the identity's token, evaluate the entries as Windows does (in order; a deny entry for a still-wanted right
//! denies, allow entries add rights until all wanted ones are granted) and name the `icacls` line that fixes a
//! denial. Reading DACLs and resolving accounts is [`win32`] (Windows only).
//!
//! What it does not model: privileges (SeBackupPrivilege), integrity labels, the owner's implicit rights, and
//! domain group memberships that NetUserGetLocalGroups does not report; only the named objects are checked, not
//! every file below them (inheritance usually makes them the same).

#[cfg(windows)]
pub mod win32;

use std::fmt::Write as _;

/// FILE_GENERIC_READ | FILE_GENERIC_EXECUTE: list and read a folder, read and load a file (icacls `RX`).
pub const READ_EXECUTE: u32 = 0x0012_00A9;
/// FILE_GENERIC_WRITE: create files in a folder, write and append to a file (part of icacls `M`).
pub const WRITE: u32 = 0x0012_0116;
const FILE_ALL_ACCESS: u32 = 0x001F_01FF;
const FILE_GENERIC_READ: u32 = 0x0012_0089;
const FILE_GENERIC_EXECUTE: u32 = 0x0012_00A0;

/// Well-known SIDs.
pub const EVERYONE: &str = "S-1-1-0";
pub const LOCAL: &str = "S-1-2-0";
pub const SERVICE: &str = "S-1-5-6";
pub const AUTHENTICATED_USERS: &str = "S-1-5-11";
pub const THIS_ORGANIZATION: &str = "S-1-5-15";
pub const USERS: &str = "S-1-5-32-545";
pub const ADMINISTRATORS: &str = "S-1-5-32-544";
pub const IIS_IUSRS: &str = "S-1-5-32-568";
pub const SYSTEM: &str = "S-1-5-18";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AceKind {
    Allow,
    Deny,
}

/// One access-control entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ace {
    pub kind: AceKind,
    pub sid: String,
    pub mask: u32,
    /// INHERIT_ONLY_ACE: applies to children only, not to this object.
    pub inherit_only: bool,
}

/// An object's discretionary ACL. A null DACL grants everything; an empty one grants nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dacl {
    Null,
    Entries(Vec<Ace>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Granted,
    /// A deny entry for one of the token's SIDs took a wanted right.
    Denied {
        sid: String,
    },
    /// No entry denied, but these wanted rights were never granted.
    NotGranted {
        missing: u32,
    },
}

/// Maps GENERIC_* bits (found in inherited entries) to the file rights they stand for.
pub fn map_generic(mask: u32) -> u32 {
    let mut out = mask & 0x0FFF_FFFF;
    if mask & 0x8000_0000 != 0 {
        out |= FILE_GENERIC_READ;
    }
    if mask & 0x4000_0000 != 0 {
        out |= WRITE;
    }
    if mask & 0x2000_0000 != 0 {
        out |= FILE_GENERIC_EXECUTE;
    }
    if mask & 0x1000_0000 != 0 {
        out |= FILE_ALL_ACCESS;
    }
    out
}

/// Windows' access check over a DACL for a token holding `sids`.
pub fn decide(dacl: &Dacl, sids: &[String], desired: u32) -> Decision {
    let Dacl::Entries(entries) = dacl else {
        return Decision::Granted;
    };
    let mut remaining = desired;
    for ace in entries.iter().filter(|a| !a.inherit_only) {
        if !sids.iter().any(|s| s.eq_ignore_ascii_case(&ace.sid)) {
            continue;
        }
        let mask = map_generic(ace.mask);
        match ace.kind {
            AceKind::Deny if mask & remaining != 0 => return Decision::Denied { sid: ace.sid.clone() },
            AceKind::Deny => {}
            AceKind::Allow => {
                remaining &= !mask;
                if remaining == 0 {
                    return Decision::Granted;
                }
            }
        }
    }
    if remaining == 0 {
        Decision::Granted
    } else {
        Decision::NotGranted { missing: remaining }
    }
}

/// What kind of account an identity is, which decides the groups in its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountKind {
    /// `IIS AppPool\NAME` (S-1-5-82-...).
    AppPool,
    /// SYSTEM, LOCAL SERVICE, NETWORK SERVICE.
    Service,
    /// A local or domain user.
    User,
}

impl AccountKind {
    pub fn of_sid(sid: &str) -> Self {
        if sid.starts_with("S-1-5-82-") {
            AccountKind::AppPool
        } else if [SYSTEM, "S-1-5-19", "S-1-5-20"].contains(&sid) {
            AccountKind::Service
        } else {
            AccountKind::User
        }
    }
}

/// The SIDs in the token of an IIS worker process (and so of its FastCGI processes) running as `sid`. IIS adds
/// IIS_IUSRS to every worker process token; a service account also holds SERVICE; `local_groups` are the groups
/// Windows reports for a user (with nested memberships).
pub fn token_sids(sid: &str, local_groups: &[String]) -> Vec<String> {
    let mut out = vec![
        sid.to_owned(),
        EVERYONE.into(),
        LOCAL.into(),
        AUTHENTICATED_USERS.into(),
        IIS_IUSRS.into(),
    ];
    match AccountKind::of_sid(sid) {
        AccountKind::AppPool | AccountKind::Service => {
            out.extend([USERS.into(), SERVICE.into(), THIS_ORGANIZATION.into()]);
            if sid == SYSTEM {
                out.push(ADMINISTRATORS.into());
            }
        }
        AccountKind::User => out.push(THIS_ORGANIZATION.into()),
    }
    for group in local_groups {
        if !out.iter().any(|s| s.eq_ignore_ascii_case(group)) {
            out.push(group.clone());
        }
    }
    out
}

/// Read or write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Write,
}

impl Need {
    pub fn mask(self) -> u32 {
        match self {
            Need::Read => READ_EXECUTE,
            Need::Write => WRITE,
        }
    }
}

/// Something the identity must be able to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// What it is ("the Python installation").
    pub what: String,
    pub path: String,
    pub need: Need,
    pub is_dir: bool,
}

/// The items `check --as` tests, from what `check` resolved. The log: the file if it exists, otherwise the
/// folder it will be created in.
pub fn items(
    python_home: Option<&str>,
    venv: Option<&str>,
    app_root: &str,
    web_config: Option<&str>,
    wsgi_log: Option<(&str, bool)>,
) -> Vec<Item> {
    let item = |what: &str, path: &str, need, is_dir| Item {
        what: what.to_owned(),
        path: path.to_owned(),
        need,
        is_dir,
    };
    let mut out = Vec::new();
    if let Some(home) = python_home {
        out.push(item("the Python installation", home, Need::Read, true));
    }
    if let Some(venv) = venv {
        out.push(item("the virtual environment", venv, Need::Read, true));
    }
    out.push(item("the application", app_root, Need::Read, true));
    if let Some(file) = web_config {
        out.push(item("web.config", file, Need::Read, false));
    }
    match wsgi_log {
        Some((file, true)) => out.push(item("the WSGI_LOG file", file, Need::Write, false)),
        Some((file, false)) => {
            let folder = file.rsplit_once(['\\', '/']).map(|(d, _)| d).unwrap_or(".");
            out.push(item("the WSGI_LOG folder", folder, Need::Write, true));
        }
        None => {}
    }
    out
}

/// The icacls command that gives `identity` what `item` needs (and first removes the deny entry, if one decided).
pub fn icacls_fix(item: &Item, identity: &str, decision: &Decision) -> String {
    let rights = match (item.need, item.is_dir) {
        (Need::Read, true) => "(OI)(CI)RX",
        (Need::Read, false) => "RX",
        (Need::Write, true) => "(OI)(CI)M",
        (Need::Write, false) => "M",
    };
    let grant = format!("icacls \"{}\" /grant \"{identity}:{rights}\"", item.path);
    match decision {
        Decision::Denied { sid } => format!(
            "icacls \"{}\" /remove:d *{sid}   (removes the deny entry; check who else it was meant for), then {grant}",
            item.path
        ),
        _ => grant,
    }
}

/// The outcome for one item: the decision, or why it could not be checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub item: Item,
    pub result: Result<Decision, String>,
}

/// The `check --as` section of the report; `true` when every item is granted.
pub fn render(identity: &str, sid: &str, outcomes: &[Outcome]) -> (String, bool) {
    let mut out = format!("\nAccess as {identity} ({sid}):\n");
    let mut ok = true;
    for outcome in outcomes {
        let item = &outcome.item;
        let verb = match item.need {
            Need::Read => "read",
            Need::Write => "write",
        };
        match &outcome.result {
            Ok(Decision::Granted) => {
                let _ = writeln!(out, "  OK      {verb:5} {} ({})", item.path, item.what);
            }
            Ok(decision) => {
                ok = false;
                let why = match decision {
                    Decision::Denied { sid } => format!("an entry denies it to {sid}"),
                    _ => format!("no entry grants it to {identity} or its groups"),
                };
                let _ = writeln!(out, "  DENIED  {verb:5} {} ({}): {why}", item.path, item.what);
                let _ = writeln!(out, "          fix: {}", icacls_fix(item, identity, decision));
            }
            Err(err) => {
                ok = false;
                let _ = writeln!(
                    out,
                    "  ?       {verb:5} {} ({}): cannot read its permissions: {err}",
                    item.path, item.what
                );
            }
        }
    }
    (out, ok)
}

/// `pyfcgi check --as`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct AsArgs {
    /// Windows only: also report whether this identity ("IIS AppPool\NAME", "NT AUTHORITY\NETWORK SERVICE",
    /// DOMAIN\user) can read Python, the venv and the application and write WSGI_LOG, with the icacls fix for
    /// each denial.
    #[arg(long = "as", value_name = "IDENTITY")]
    pub identity: Option<String>,
}

impl AsArgs {
    /// Refuses `--as` where it cannot work, before anything else runs.
    pub fn ensure_supported(&self) -> Result<(), String> {
        match &self.identity {
            Some(identity) if !cfg!(windows) => Err(format!(
                "--as \"{identity}\" is Windows-only: it reads Windows access-control lists; on this system run the \
                 check as that user instead (e.g. sudo -u www-data pyfcgi check ...)"
            )),
            _ => Ok(()),
        }
    }
}

/// What `check` resolved, for `--as`.
pub struct Resolved<'a> {
    pub python_home: Option<&'a std::path::Path>,
    pub venv: Option<&'a std::path::Path>,
    pub app_root: &'a std::path::Path,
    pub web_config: Option<&'a std::path::Path>,
    pub wsgi_log: Option<&'a std::path::Path>,
}

/// Runs `check --as` and prints its section; `Ok(true)` when every item is granted.
pub fn print_check_as(identity: &str, resolved: &Resolved<'_>) -> std::io::Result<bool> {
    let text = |p: &std::path::Path| p.display().to_string();
    let log = resolved.wsgi_log.map(|p| (text(p), p.is_file()));
    let list = items(
        resolved.python_home.map(text).as_deref(),
        resolved.venv.map(text).as_deref(),
        &text(resolved.app_root),
        resolved.web_config.map(text).as_deref(),
        log.as_ref().map(|(p, exists)| (p.as_str(), *exists)),
    );
    let (report, ok) = evaluate(identity, &list)?;
    print!("{report}");
    Ok(ok)
}

#[cfg(windows)]
fn evaluate(identity: &str, list: &[Item]) -> std::io::Result<(String, bool)> {
    let sid = win32::lookup_sid(identity).map_err(|err| {
        std::io::Error::new(
            err.kind(),
            format!(
                "no account \"{identity}\" ({err}); an \"IIS AppPool\\NAME\" identity exists only while that pool exists"
            ),
        )
    })?;
    let groups = match AccountKind::of_sid(&sid) {
        AccountKind::User => win32::local_group_sids(identity),
        _ => Vec::new(),
    };
    let token = token_sids(&sid, &groups);
    let outcomes: Vec<Outcome> = list
        .iter()
        .map(|item| Outcome {
            item: item.clone(),
            result: win32::read_dacl(&item.path)
                .map(|dacl| decide(&dacl, &token, item.need.mask()))
                .map_err(|e| e.to_string()),
        })
        .collect();
    Ok(render(identity, &sid, &outcomes))
}

#[cfg(not(windows))]
fn evaluate(_identity: &str, _list: &[Item]) -> std::io::Result<(String, bool)> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "--as is Windows-only",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ace(kind: AceKind, sid: &str, mask: u32) -> Ace {
        Ace {
            kind,
            sid: sid.into(),
            mask,
            inherit_only: false,
        }
    }

    const POOL: &str = "S-1-5-82-3006700770-424185619-1745488364-794895919-4004696415";

    #[test]
    fn the_default_inetpub_acl_lets_a_pool_read_but_not_write() {
        // C:\inetpub\wwwroot as Windows installs it: SYSTEM and Administrators full, Users and IIS_IUSRS RX.
        let dacl = Dacl::Entries(vec![
            ace(AceKind::Allow, SYSTEM, FILE_ALL_ACCESS),
            ace(AceKind::Allow, ADMINISTRATORS, FILE_ALL_ACCESS),
            ace(AceKind::Allow, USERS, READ_EXECUTE),
            ace(AceKind::Allow, IIS_IUSRS, READ_EXECUTE),
        ]);
        let token = token_sids(POOL, &[]);
        assert_eq!(decide(&dacl, &token, READ_EXECUTE), Decision::Granted);
        assert_eq!(decide(&dacl, &token, WRITE), Decision::NotGranted { missing: 0x116 });
        assert_eq!(decide(&Dacl::Null, &token, WRITE), Decision::Granted);
        assert_eq!(
            decide(&Dacl::Entries(Vec::new()), &token, READ_EXECUTE),
            Decision::NotGranted { missing: READ_EXECUTE }
        );
    }

    #[test]
    fn a_user_profile_python_is_unreadable_for_the_pool() {
        // C:\Users\alice\AppData\Local\Programs\Python\Python311: only alice, SYSTEM, Administrators.
        let alice = "S-1-5-21-1-2-3-1001";
        let dacl = Dacl::Entries(vec![
            ace(AceKind::Allow, SYSTEM, FILE_ALL_ACCESS),
            ace(AceKind::Allow, ADMINISTRATORS, FILE_ALL_ACCESS),
            ace(AceKind::Allow, alice, FILE_ALL_ACCESS),
        ]);
        assert!(matches!(
            decide(&dacl, &token_sids(POOL, &[]), READ_EXECUTE),
            Decision::NotGranted { .. }
        ));
        assert_eq!(
            decide(&dacl, &token_sids(alice, &[USERS.into()]), READ_EXECUTE),
            Decision::Granted
        );
    }

    #[test]
    fn deny_entries_win_in_order_and_rights_add_up() {
        let token = token_sids(POOL, &[]);
        let deny_first = Dacl::Entries(vec![
            ace(AceKind::Deny, IIS_IUSRS, WRITE),
            ace(AceKind::Allow, EVERYONE, FILE_ALL_ACCESS),
        ]);
        assert_eq!(
            decide(&deny_first, &token, WRITE),
            Decision::Denied { sid: IIS_IUSRS.into() }
        );
        // Windows' trap, reproduced: FILE_GENERIC_WRITE includes SYNCHRONIZE and READ_CONTROL, so a deny of
        // "write" (icacls /deny ...:W) also denies reading.
        assert_eq!(
            decide(&deny_first, &token, READ_EXECUTE),
            Decision::Denied { sid: IIS_IUSRS.into() }
        );
        // A deny of only the data-writing bits leaves reading alone.
        let deny_data = Dacl::Entries(vec![
            ace(AceKind::Deny, IIS_IUSRS, 0x116),
            ace(AceKind::Allow, EVERYONE, FILE_ALL_ACCESS),
        ]);
        assert_eq!(decide(&deny_data, &token, READ_EXECUTE), Decision::Granted);
        let allow_first = Dacl::Entries(vec![
            ace(AceKind::Allow, POOL, WRITE),
            ace(AceKind::Deny, EVERYONE, WRITE),
        ]);
        assert_eq!(decide(&allow_first, &token, WRITE), Decision::Granted);
        // Two partial grants from different groups make the whole; GENERIC_READ is mapped; inherit-only is skipped.
        let split = Dacl::Entries(vec![
            Ace {
                inherit_only: true,
                ..ace(AceKind::Deny, EVERYONE, FILE_ALL_ACCESS)
            },
            ace(AceKind::Allow, USERS, 0x8000_0000),
            ace(AceKind::Allow, AUTHENTICATED_USERS, FILE_GENERIC_EXECUTE),
        ]);
        assert_eq!(decide(&split, &token, READ_EXECUTE), Decision::Granted);
        // A user that is not in Users does not get what only Users is given.
        let users_only = Dacl::Entries(vec![ace(AceKind::Allow, USERS, READ_EXECUTE)]);
        assert!(matches!(
            decide(&users_only, &token_sids("S-1-5-21-9-9-9-500", &[]), READ_EXECUTE),
            Decision::NotGranted { .. }
        ));
    }

    #[test]
    fn items_and_fixes_name_the_icacls_line() {
        let list = items(
            Some(r"C:\Python311"),
            Some(r"C:\site\.venv"),
            r"C:\site",
            Some(r"C:\site\web.config"),
            Some((r"C:\logs\site.log", false)),
        );
        let paths: Vec<&str> = list.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                r"C:\Python311",
                r"C:\site\.venv",
                r"C:\site",
                r"C:\site\web.config",
                r"C:\logs"
            ]
        );
        let identity = r"IIS AppPool\mysite";
        assert_eq!(
            icacls_fix(&list[0], identity, &Decision::NotGranted { missing: 1 }),
            r#"icacls "C:\Python311" /grant "IIS AppPool\mysite:(OI)(CI)RX""#
        );
        assert_eq!(
            icacls_fix(&list[4], identity, &Decision::NotGranted { missing: 2 }),
            r#"icacls "C:\logs" /grant "IIS AppPool\mysite:(OI)(CI)M""#
        );
        assert!(
            icacls_fix(&list[3], identity, &Decision::Denied { sid: EVERYONE.into() })
                .starts_with(r#"icacls "C:\site\web.config" /remove:d *S-1-1-0"#)
        );
        let outcomes = vec![
            Outcome {
                item: list[2].clone(),
                result: Ok(Decision::Granted),
            },
            Outcome {
                item: list[4].clone(),
                result: Ok(Decision::NotGranted { missing: 2 }),
            },
        ];
        let (text, ok) = render(identity, POOL, &outcomes);
        assert!(!ok);
        assert!(text.contains(r"OK      read  C:\site (the application)"), "{text}");
        assert!(
            text.contains(r#"fix: icacls "C:\logs" /grant "IIS AppPool\mysite:(OI)(CI)M""#),
            "{text}"
        );
        assert!(render(identity, POOL, &outcomes[..1]).1);
    }
}
