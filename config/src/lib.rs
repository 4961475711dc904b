//! Where a WARP setting comes from: the environment first, then an optional TOML file.
//!
//! The file is the one `WARP_CONFIG` names, else `/etc/warp/warp.toml` when there is
//! one; `WARP_CONFIG=` (empty) reads none. Its keys are the variables' names without
//! `WARP_`, lower-case, at the top level for every service and in a table per service
//! (`[api]`, `[rtpengine]`, `[pull]`) that wins over the top level for that service.

#[cfg(feature = "clap")]
mod clap_args;
mod file;
pub mod services;

#[cfg(feature = "clap")]
pub use clap_args::{fill_from_file, load_or_exit};
pub use services::{Service, API, PULL, RTPENGINE};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Read when `WARP_CONFIG` is unset and the file exists: a packaged service finds its
/// settings where the package put them without a unit file naming it.
pub const DEFAULT_PATH: &str = "/etc/warp/warp.toml";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the config file {} is not valid TOML: {message}", path.display())]
    Malformed { path: PathBuf, message: String },
    #[error(
        "the config file {}, line {line}: `{key}` is not a setting of any WARP service \
         there (keys are the variables' names without WARP_, lower-case)",
        path.display()
    )]
    UnknownKey {
        path: PathBuf,
        line: usize,
        key: String,
    },
    #[error(
        "the config file {}, line {line}: `{key}` is {found}; {wanted} is wanted",
        path.display()
    )]
    WrongType {
        path: PathBuf,
        line: usize,
        key: String,
        found: &'static str,
        wanted: &'static str,
    },
}

/// One service's settings from the file, asked after the environment.
#[derive(Debug, Default)]
pub struct Settings {
    file: Option<PathBuf>,
    values: BTreeMap<&'static str, String>,
}

impl Settings {
    /// The file the process environment names (or the default one), for `service`.
    pub fn load(service: &Service) -> Result<Settings, Error> {
        Self::load_with(service, |k| std::env::var_os(k))
    }

    /// As [`Settings::load`], `WARP_CONFIG` read through `env`.
    pub fn load_with(
        service: &Service,
        env: impl Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Result<Settings, Error> {
        Self::choose(service, env("WARP_CONFIG"), Path::new(DEFAULT_PATH))
    }

    /// The file `named` (empty: none), else `default` when it exists.
    fn choose(
        service: &Service,
        named: Option<std::ffi::OsString>,
        default: &Path,
    ) -> Result<Settings, Error> {
        match named {
            Some(named) if named.is_empty() => Ok(Settings::default()),
            Some(named) => Self::read(service, Path::new(&named)),
            None => match Self::read(service, default) {
                Err(Error::Read { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    Ok(Settings::default())
                }
                other => other,
            },
        }
    }

    /// `path`, which must exist, for `service`.
    pub fn read(service: &Service, path: &Path) -> Result<Settings, Error> {
        Ok(Settings {
            values: file::read(path, service)?,
            file: Some(path.into()),
        })
    }

    /// The file read, if any: for the effective configuration a service prints.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// What the file says for `var` (`WARP_...`), environment aside.
    pub fn from_file(&self, var: &str) -> Option<&str> {
        self.values.get(var).map(String::as_str)
    }

    /// `var` from the process environment, else from the file.
    pub fn get(&self, var: &str) -> Option<String> {
        self.over(|k| std::env::var(k).ok())(var)
    }

    /// A lookup: `env` first, then the file. A variable set but empty is unset, as the
    /// services read text settings, so the file's value stands; with none there, the
    /// empty value is what the service gets, as it did before the file.
    pub fn over<'a>(
        &'a self,
        env: impl Fn(&str) -> Option<String> + 'a,
    ) -> impl Fn(&str) -> Option<String> + 'a {
        move |var| match env(var) {
            Some(set) if !set.is_empty() => Some(set),
            set => self.from_file(var).map(str::to_owned).or(set),
        }
    }
}

#[cfg(test)]
mod tests;
