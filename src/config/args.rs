//! The command-line flags of the settings, built from [`super::table`] with clap's builder API: one flag per row
//! that has one, its help text, value name, default and environment variable taken from the row, and its value
//! checked by the row's parser (so a bad flag is a usage error). Flags only collect text into [`CliOverrides`];
//! resolution, with web.config and the environment, happens in [`super::Settings`] like for every other layer.

use clap::builder::{ArgAction, TypedValueParser, ValueParser};
use clap::{Arg, ArgMatches, Command, FromArgMatches};

use super::table::{self, Flag, Meta, Row, WebConfig};
use super::CliOverrides;

/// Every setting's flag, for `pyfcgi` and `pyfcgi check`.
#[derive(Debug, Clone, Default)]
pub struct SettingArgs {
    pub overrides: CliOverrides,
}

fn every(_: &Meta) -> bool {
    true
}

/// The row's flag as a clap argument, or `None` if it has none.
fn arg(row: &'static dyn Row) -> Option<Arg> {
    let meta = row.meta();
    let long = meta.flag.long()?;
    let mut help = meta
        .help
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('`', "");
    if let Flag::Switch { sets, .. } = meta.flag {
        help = format!("Sets {}={sets}: {help}", meta.key);
    }
    let default = meta.default.replace('`', "");
    if !default.is_empty() && !default.starts_with('(') && matches!(meta.flag, Flag::Value { .. }) {
        help.push_str(&format!(" [default: {default}]"));
    }
    help.push_str(&format!(" [env: {}", meta.key));
    if let WebConfig::Yes = meta.web_config {
        help.push_str(", or a web.config appSetting");
    }
    help.push(']');
    let arg = Arg::new(long).long(long).help(help);
    Some(match meta.flag {
        Flag::None => return None,
        Flag::Switch { .. } => arg.action(ArgAction::SetTrue),
        Flag::Value { value_name, .. } => arg
            .value_name(value_name)
            .action(ArgAction::Set)
            .value_parser(ValueParser::new(RowParser(row))),
    })
}

/// Checks a flag's text with its row's parser.
#[derive(Clone)]
struct RowParser(&'static dyn Row);

impl TypedValueParser for RowParser {
    type Value = String;

    fn parse_ref(&self, cmd: &Command, arg: Option<&Arg>, value: &std::ffi::OsStr) -> Result<String, clap::Error> {
        let text = value.to_string_lossy().into_owned();
        self.0.validate(&text).map(|()| text.clone()).map_err(|expected| {
            let flag = arg.map(|a| a.to_string()).unwrap_or_default();
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value '{text}' for '{flag}': expected {expected}\n"),
            )
            .with_cmd(cmd)
        })
    }
}

/// Adds the flags of the rows `filter` accepts.
pub fn augment(mut cmd: Command, filter: fn(&Meta) -> bool) -> Command {
    for row in table::ALL.iter().copied().filter(|r| filter(r.meta())) {
        if let Some(arg) = arg(row) {
            cmd = cmd.arg(arg);
        }
    }
    cmd
}

/// The text each given flag sets, by row.
pub fn overrides(matches: &ArgMatches, filter: fn(&Meta) -> bool) -> CliOverrides {
    let mut cli = CliOverrides::default();
    for row in table::ALL.iter().copied().filter(|r| filter(r.meta())) {
        let meta = row.meta();
        match meta.flag {
            Flag::None => {}
            Flag::Switch { long, sets } => {
                if matches.get_flag(long) {
                    cli.set(meta.name, sets.to_owned());
                }
            }
            Flag::Value { long, .. } => {
                if let Some(value) = matches.get_one::<String>(long) {
                    cli.set(meta.name, value.clone());
                }
            }
        }
    }
    cli
}

impl FromArgMatches for SettingArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(SettingArgs {
            overrides: overrides(matches, every),
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl clap::Args for SettingArgs {
    fn augment_args(cmd: Command) -> Command {
        augment(cmd, every)
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        augment(cmd, every)
    }
}
