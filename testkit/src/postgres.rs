//! A throwaway PostgreSQL cluster: `initdb` in a temp dir, `postgres` on 127.0.0.1 at a
//! free port (socket in the temp dir), stopped and deleted on drop. When the tests run
//! as root it runs as the `postgres` user, because `initdb` refuses root.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A running cluster with one trust-authenticated superuser, `postgres`.
pub struct Postgres {
    /// `postgres://postgres@127.0.0.1:PORT/postgres`
    pub url: String,
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    run_as: Option<&'static str>,
    _dir: tempfile::TempDir,
}

impl Postgres {
    /// Creates and starts a cluster (about a second).
    pub fn start() -> io::Result<Self> {
        let bin = bin_dir()?;
        let run_as = is_root().then_some("postgres");
        let dir = tempfile::Builder::new().prefix("warp-pg-").tempdir()?;
        if let Some(user) = run_as {
            check(
                Command::new("chown").arg(user).arg(dir.path()).output()?,
                "chown",
            )?;
        }
        let data = dir.path().join("data");
        let mut pg = Postgres {
            url: String::new(),
            port: 0,
            bin,
            data,
            run_as,
            _dir: dir,
        };
        pg.run(
            "initdb",
            &[
                "-D".as_ref(),
                pg.data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "--auth=trust".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--no-sync".as_ref(),
            ],
        )?;
        let port = crate::ports::start_on_a_free_port(|port| pg.start_on(port).map(|()| port))?;
        pg.port = port;
        pg.url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        Ok(pg)
    }

    /// Creates database `name` and returns its URL.
    pub fn create_db(&self, name: &str) -> io::Result<String> {
        self.run(
            "createdb",
            &[
                "-h".as_ref(),
                "127.0.0.1".as_ref(),
                "-p".as_ref(),
                self.port.to_string().as_ref(),
                "-U".as_ref(),
                "postgres".as_ref(),
                name.as_ref(),
            ],
        )?;
        Ok(format!(
            "postgres://postgres@127.0.0.1:{}/{name}",
            self.port
        ))
    }

    fn start_on(&self, port: u16) -> io::Result<()> {
        let socket_dir = self.data.parent().unwrap_or(Path::new("/tmp"));
        let opts = format!(
            "-k {} -c listen_addresses=127.0.0.1 -p {port} -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=50",
            socket_dir.display()
        );
        let log = self.data.with_file_name("postgres.log");
        self.run(
            "pg_ctl",
            &[
                "start".as_ref(),
                "-w".as_ref(),
                "-D".as_ref(),
                self.data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-o".as_ref(),
                opts.as_ref(),
            ],
        )
        .map_err(|e| {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            io::Error::other(format!("{e}\n{tail}"))
        })
    }

    /// Runs a PostgreSQL tool from the cluster's bin dir, as the cluster's owner.
    fn run(&self, tool: &str, args: &[&std::ffi::OsStr]) -> io::Result<()> {
        let exe = self.bin.join(tool);
        let mut cmd = match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        cmd.args(args)
            .current_dir(self.data.parent().unwrap_or(Path::new("/")));
        check(cmd.output()?, tool)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Immediate: the cluster is thrown away, nothing needs a clean checkpoint.
        let _ = self.run(
            "pg_ctl",
            &[
                "stop".as_ref(),
                "-m".as_ref(),
                "immediate".as_ref(),
                "-w".as_ref(),
                "-D".as_ref(),
                self.data.as_os_str(),
            ],
        );
    }
}

fn check(out: Output, what: &str) -> io::Result<()> {
    if out.status.success() {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `WARP_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin` (Debian), else `PATH`'s.
fn bin_dir() -> io::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("WARP_PG_BIN") {
        return Ok(dir.into());
    }
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists())
        .max();
    if let Some((_, bin)) = newest {
        return Ok(bin);
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .find(|d| d.join("initdb").exists())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "PostgreSQL's initdb not found: install postgresql-15 or set WARP_PG_BIN",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One query through `psql` over TCP to the cluster's port, as a test's pool connects.
    fn query(pg: &Postgres, db: &str, sql: &str) -> io::Result<String> {
        let out = Command::new(pg.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &pg.port.to_string()])
            .args(["-U", "postgres", "-d", db, "-X", "-tAc", sql])
            .output()?;
        check(out.clone(), "psql")?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    #[test]
    fn starts_accepts_connections_and_stops() {
        let pg = Postgres::start().unwrap();
        let url = pg.create_db("probe").unwrap();
        assert_eq!(
            url,
            format!("postgres://postgres@127.0.0.1:{}/probe", pg.port)
        );
        assert_eq!(
            query(&pg, "probe", "SELECT current_database()").unwrap(),
            "probe",
            "the database was created and the server answers on its port"
        );
        let (data, port) = (pg.data.clone(), pg.port);
        drop(pg);
        assert!(!data.exists(), "temp dir is removed on drop");
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "the server still listens on {port} after drop"
        );
    }
}
