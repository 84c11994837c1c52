//! Where a store is, as users write it: `redb:DIR` (the embedded store in
//! a data directory) or `postgres://user@host:port/db?sslmode=...` (also
//! `postgresql://`). A location shows itself with any password replaced
//! by `***`, so it can be logged; the password comes from the URL, else
//! `PGPASSWORD`, else the password file (`PGPASSFILE`, by default
//! `~/.pgpass`), as libpq finds it. `sslmode` and `sslrootcert` are
//! libpq's too (see `postgres/tls.rs` for what each mode checks).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// A store's location.
#[derive(Debug, Clone)]
pub enum StoreLocation {
    /// The embedded redb store in this data directory.
    Redb(PathBuf),
    /// A PostgreSQL database.
    Postgres(Box<PgLocation>),
}

/// A PostgreSQL database and how to reach it.
#[derive(Clone)]
pub struct PgLocation {
    /// What the client connects with (TLS mode aside, see `tls`).
    pub config: tokio_postgres::Config,
    /// How the connection is protected.
    pub tls: TlsMode,
    /// The trusted roots' file (`sslrootcert`), if the URL or
    /// `PGSSLROOTCERT` names one; else the system's roots are trusted.
    pub root_cert: Option<PathBuf>,
    /// The URL as given, with its password replaced by `***`.
    redacted: String,
}

/// libpq's `sslmode`. The client knows only the first three, and only
/// whether to ask for TLS: what is checked is the TLS connector's to
/// enforce (`postgres/tls.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it (libpq's default).
    Prefer,
    /// TLS, without checking the server's certificate.
    Require,
    /// TLS, with the certificate checked against the trusted roots.
    VerifyCa,
    /// TLS, with the certificate checked and naming the host.
    VerifyFull,
}

impl fmt::Display for TlsMode {
    /// As written in `sslmode=`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsMode::Disable => "disable",
            TlsMode::Prefer => "prefer",
            TlsMode::Require => "require",
            TlsMode::VerifyCa => "verify-ca",
            TlsMode::VerifyFull => "verify-full",
        })
    }
}

/// Why a location could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocationError {
    /// Neither form.
    #[error("{0:?} is not a store: write redb:DIR or postgres://user@host:port/database")]
    Unknown(String),
    /// `redb:` with nothing after it.
    #[error("redb: needs a directory, as in redb:/var/lib/weft")]
    NoDirectory,
    /// A PostgreSQL URL the client cannot read.
    #[error("{url}: {reason}")]
    BadUrl {
        /// The URL, its password replaced.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl FromStr for StoreLocation {
    type Err = LocationError;

    fn from_str(text: &str) -> Result<StoreLocation, LocationError> {
        if let Some(dir) = text.strip_prefix("redb:") {
            return match dir {
                "" => Err(LocationError::NoDirectory),
                dir => Ok(StoreLocation::Redb(PathBuf::from(dir))),
            };
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return PgLocation::parse(text).map(|pg| StoreLocation::Postgres(Box::new(pg)));
        }
        Err(LocationError::Unknown(redact(text)))
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Redb(dir) => write!(f, "redb:{}", dir.display()),
            StoreLocation::Postgres(pg) => f.write_str(&pg.redacted),
        }
    }
}

impl PgLocation {
    fn parse(url: &str) -> Result<PgLocation, LocationError> {
        let redacted = redact(url);
        let bad = |reason: String| LocationError::BadUrl {
            url: redacted.clone(),
            reason,
        };
        // The client refuses the verifying modes and `sslrootcert`; weft
        // takes both off the URL and hands the client what it knows.
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut tls = TlsMode::Prefer;
        let mut root_cert = None;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("sslmode", mode)) => {
                    tls = match mode {
                        "disable" => TlsMode::Disable,
                        "prefer" => TlsMode::Prefer,
                        "require" => TlsMode::Require,
                        "verify-ca" => TlsMode::VerifyCa,
                        "verify-full" => TlsMode::VerifyFull,
                        other => {
                            return Err(bad(format!(
                                "sslmode {other:?} is not one of disable, prefer, require, verify-ca, verify-full"
                            )));
                        }
                    }
                }
                Some(("sslrootcert", path)) => {
                    let path = percent_encoding::percent_decode_str(path)
                        .decode_utf8()
                        .map_err(|e| bad(format!("sslrootcert is not UTF-8 once decoded: {e}")))?;
                    root_cert = Some(PathBuf::from(path.as_ref()));
                }
                _ => kept.push(pair),
            }
        }
        let client_url = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let mut config: tokio_postgres::Config = client_url.parse().map_err(|e| bad(format!("{e}")))?;
        config.ssl_mode(match tls {
            TlsMode::Disable => tokio_postgres::config::SslMode::Disable,
            TlsMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            TlsMode::Require | TlsMode::VerifyCa | TlsMode::VerifyFull => tokio_postgres::config::SslMode::Require,
        });
        Ok(PgLocation {
            config,
            tls,
            root_cert,
            redacted,
        })
    }

    /// Takes the trusted roots' file from `PGSSLROOTCERT` when the URL
    /// names none, as libpq does. `env` reads an environment variable.
    pub fn with_root_cert_from(mut self, env: impl Fn(&str) -> Option<String>) -> PgLocation {
        if self.root_cert.is_none() {
            self.root_cert = env("PGSSLROOTCERT").filter(|path| !path.is_empty()).map(PathBuf::from);
        }
        self
    }

    /// Fills in the password when the URL has none: from `PGPASSWORD`,
    /// else from the password file. `env` reads an environment variable
    /// (`std::env::var` in the server, anything in tests).
    pub fn with_password_from(mut self, env: impl Fn(&str) -> Option<String>) -> PgLocation {
        if self.config.get_password().is_some() {
            return self;
        }
        let password = env("PGPASSWORD").filter(|p| !p.is_empty()).or_else(|| {
            let file = env("PGPASSFILE")
                .map(PathBuf::from)
                .or_else(|| env("HOME").map(|home| PathBuf::from(home).join(".pgpass")))?;
            let text = std::fs::read_to_string(file).ok()?;
            self.password_in(&text)
        });
        if let Some(password) = password {
            self.config.password(password);
        }
        self
    }

    /// The password a `.pgpass` text holds for this location: the first
    /// line `host:port:database:user:password` whose fields match (`*`
    /// matches anything; `\:` and `\\` escape).
    fn password_in(&self, pgpass: &str) -> Option<String> {
        let host = match self.config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            _ => "localhost".into(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432).to_string();
        let user = self.config.get_user().unwrap_or_default().to_string();
        let database = self.config.get_dbname().map_or_else(|| user.clone(), str::to_string);
        let wanted = [host, port, database, user];
        pgpass
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .find_map(|line| {
                let fields = split_pgpass(line);
                let [h, p, d, u, password] = <[String; 5]>::try_from(fields).ok()?;
                let matches = [h, p, d, u]
                    .iter()
                    .zip(&wanted)
                    .all(|(field, wanted)| field == "*" || field == wanted);
                matches.then_some(password)
            })
    }
}

impl fmt::Display for PgLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Debug for PgLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the config itself: it holds the password.
        f.debug_struct("PgLocation")
            .field("url", &self.redacted)
            .field("tls", &self.tls)
            .field("root_cert", &self.root_cert)
            .finish()
    }
}

/// The fields of a `.pgpass` line, unescaped.
fn split_pgpass(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().expect("one field").push(next);
                }
            }
            ':' => fields.push(String::new()),
            c => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

/// `text` with the password of a URL in it replaced by `***`.
fn redact(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => text.to_string(),
        },
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn pg(text: &str) -> PgLocation {
        match text.parse::<StoreLocation>() {
            Ok(StoreLocation::Postgres(pg)) => *pg,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn both_forms_are_read_and_anything_else_is_refused_by_name() {
        assert!(
            matches!("redb:/var/lib/weft".parse(), Ok(StoreLocation::Redb(dir)) if dir == Path::new("/var/lib/weft"))
        );
        assert_eq!(
            "redb:".parse::<StoreLocation>().unwrap_err(),
            LocationError::NoDirectory
        );
        let location = pg("postgresql://weft@db.internal:6432/prod");
        assert_eq!(location.config.get_dbname(), Some("prod"));
        assert_eq!(location.config.get_ports(), [6432]);
        assert_eq!(location.tls, TlsMode::Prefer);
        let error = "mysql://root:hunter2@db/x".parse::<StoreLocation>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "\"mysql://root:***@db/x\" is not a store: write redb:DIR or postgres://user@host:port/database"
        );
    }

    #[test]
    fn a_password_never_shows() {
        let text = "postgres://weft:s3cret@db:5432/weft?sslmode=require";
        let location: StoreLocation = text.parse().unwrap();
        assert_eq!(location.to_string(), "postgres://weft:***@db:5432/weft?sslmode=require");
        assert!(!format!("{location:?}").contains("s3cret"));
        let error = "postgres://weft:s3cret@db:notaport/weft"
            .parse::<StoreLocation>()
            .unwrap_err();
        assert!(!error.to_string().contains("s3cret"), "{error}");
        assert!(
            error.to_string().contains("postgres://weft:***@db:notaport/weft"),
            "{error}"
        );
    }

    #[test]
    fn the_verifying_tls_modes_are_weft_s_and_the_client_is_told_to_require_tls() {
        for (mode, tls) in [
            ("disable", TlsMode::Disable),
            ("require", TlsMode::Require),
            ("verify-ca", TlsMode::VerifyCa),
            ("verify-full", TlsMode::VerifyFull),
        ] {
            let location = pg(&format!("postgres://weft@db/weft?application_name=w&sslmode={mode}"));
            assert_eq!(location.tls, tls);
            assert_eq!(location.config.get_application_name(), Some("w"));
        }
        assert_eq!(
            pg("postgres://weft@db/weft?sslmode=verify-full").config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
        let error = "postgres://weft@db/weft?sslmode=maybe"
            .parse::<StoreLocation>()
            .unwrap_err();
        assert!(error.to_string().contains("sslmode \"maybe\""), "{error}");
    }

    #[test]
    fn the_roots_file_is_weft_s_from_the_url_else_pgsslrootcert() {
        // The client would refuse `sslrootcert`: it is taken off the URL.
        let location = pg("postgres://weft@db/weft?sslrootcert=/etc/weft/our%20ca.pem&sslmode=verify-full");
        assert_eq!(location.root_cert.as_deref(), Some(Path::new("/etc/weft/our ca.pem")));
        let env = |name: &str| (name == "PGSSLROOTCERT").then(|| "/from/env.pem".to_string());
        assert_eq!(
            location.with_root_cert_from(env).root_cert.as_deref(),
            Some(Path::new("/etc/weft/our ca.pem"))
        );
        assert_eq!(
            pg("postgres://weft@db/weft")
                .with_root_cert_from(env)
                .root_cert
                .as_deref(),
            Some(Path::new("/from/env.pem"))
        );
        assert_eq!(
            pg("postgres://weft@db/weft").with_root_cert_from(|_| None).root_cert,
            None
        );
    }

    #[test]
    fn the_password_comes_from_the_url_then_pgpassword_then_the_password_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pgpass");
        std::fs::write(
            &file,
            "# comment\nother:5432:weft:weft:wrong\ndb:*:weft:weft:from\\:file\n*:*:*:*:fallback\n",
        )
        .unwrap();
        let file = file.to_string_lossy().into_owned();
        let env = |pgpassword: Option<&'static str>| {
            let file = file.clone();
            move |name: &str| match name {
                "PGPASSWORD" => pgpassword.map(str::to_string),
                "PGPASSFILE" => Some(file.clone()),
                _ => None,
            }
        };
        let password = |location: PgLocation| location.config.get_password().map(|p| p.to_vec());
        let url = "postgres://weft@db:5432/weft";
        assert_eq!(
            password(pg(url).with_password_from(env(None))),
            Some(b"from:file".to_vec())
        );
        assert_eq!(
            password(pg(url).with_password_from(env(Some("env")))),
            Some(b"env".to_vec())
        );
        assert_eq!(
            password(pg("postgres://weft:url@db:5432/weft").with_password_from(env(Some("env")))),
            Some(b"url".to_vec())
        );
        assert_eq!(
            password(pg("postgres://other@elsewhere/x").with_password_from(env(None))),
            Some(b"fallback".to_vec())
        );
        assert_eq!(password(pg(url).with_password_from(|_| None)), None);
    }
}
