//! clap's env-backed arguments (`#[arg(env = "WARP_...")]`) taking the file's value
//! when the environment has none, without setting any process variable.

use crate::{Service, Settings};
use clap::{Arg, Command};

/// `service`'s settings ([`Settings::load`]), or the file's error as a usage error of
/// `command` and exit (status 2), as a bad argument would.
pub fn load_or_exit(service: &Service, mut command: Command) -> Settings {
    Settings::load(service).unwrap_or_else(|e| {
        command
            .error(clap::error::ErrorKind::InvalidValue, e)
            .exit()
    })
}

/// `command` with each env-backed argument the file sets defaulting to the file's
/// value: clap then takes the command line, else the variable, else that. A variable
/// set but empty is dropped for the file's value, as [`Settings::over`] does.
pub fn fill_from_file(command: Command, settings: &Settings) -> Command {
    command
        .mut_args(|arg| from_file(arg, settings))
        .mut_subcommands(|sub| fill_from_file(sub, settings))
}

fn from_file(arg: Arg, settings: &Settings) -> Arg {
    let Some(var) = arg.get_env().and_then(|v| v.to_str()).map(str::to_owned) else {
        return arg;
    };
    let Some(value) = settings.from_file(&var) else {
        return arg;
    };
    let arg = match std::env::var_os(&var) {
        Some(set) if set.is_empty() => arg.env(None::<&str>),
        _ => arg,
    };
    // Hidden: the file may hold a password (a Redis URL), which --help would show.
    arg.default_value(value.to_owned())
        .hide_default_value(true)
        .required(false)
}
