//! `/etc/brig/config.toml`: trust, policy, profiles, attestations, audit.
//!
//! No configuration is never a silent "allow": `create`, `run` and `exec`
//! refuse to launch without one and say how to make one.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Default configuration path.
pub const DEFAULT_CONFIG: &str = "/etc/brig/config.toml";

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "no brig configuration at `{}`: brig refuses to launch without one. \
         Create a development configuration with `brig init`, or point --config / BRIG_CONFIG at one",
        .0.display()
    )]
    Missing(PathBuf),
    #[error("reading `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}`: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("`{}`: {field}: {message}", path.display())]
    Invalid { path: PathBuf, field: &'static str, message: String },
}

pub use brig_policy::AuthMode;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfilesSection {
    /// Directory of profile overrides (`*.toml`).
    #[serde(default = "default_profiles_dir")]
    pub dir: PathBuf,
    /// Profile for jobs that do not ask for one.
    #[serde(default = "default_profile")]
    pub default: String,
}

fn default_profiles_dir() -> PathBuf {
    PathBuf::from("/etc/brig/profiles")
}

fn default_profile() -> String {
    brig_profiles::DEFAULT_PROFILE.to_string()
}

impl Default for ProfilesSection {
    fn default() -> Self {
        ProfilesSection { dir: default_profiles_dir(), default: default_profile() }
    }
}

/// Where the container clients on this host keep their per-container files.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientsSection {
    /// Host directories, besides the clients' default ones (Docker, Podman,
    /// containerd's CRI plugin, the kubelet), from which a client may
    /// bind-mount its own per-container files (`/etc/hosts`, `/dev/shm`, ...)
    /// into a job whatever the profile's mount ceilings: a containerd with a
    /// non-default root or state (k3s, RKE2).
    #[serde(default)]
    pub state_dirs: Vec<PathBuf>,
    /// dockerd binaries besides `/usr/bin/dockerd`, `/usr/sbin/dockerd` and
    /// `/usr/local/bin/dockerd`: Docker's `libnetwork-setkey` hook
    /// (`/proc/<dockerd pid>/exe`) passes every profile only when that
    /// process runs one of them (same file, owned by root, not writable by
    /// group or others).
    #[serde(default)]
    pub dockerd_binaries: Vec<PathBuf>,
}

/// Where per-job user-namespace ranges come from.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserNamespaceSection {
    /// An explicit pool (`{ start, count, range }`).
    pub pool: Option<crate::userns::Pool>,
    /// Or the subordinate IDs of this user in /etc/subuid and /etc/subgid.
    pub subid_user: Option<String>,
}

impl UserNamespaceSection {
    /// The pool jobs' ranges are allocated from.
    pub fn pool(&self) -> Result<crate::userns::Pool, crate::userns::UsernsError> {
        let pool = self.unchecked_pool()?;
        pool.check()?;
        Ok(pool)
    }

    fn unchecked_pool(&self) -> Result<crate::userns::Pool, crate::userns::UsernsError> {
        match (&self.pool, &self.subid_user) {
            (Some(p), _) => Ok(*p),
            (None, Some(user)) => {
                let uid = crate::userns::Pool::from_subid_file(Path::new("/etc/subuid"), user, 65536)?;
                let gid = crate::userns::Pool::from_subid_file(Path::new("/etc/subgid"), user, 65536)?;
                // Jobs use the same numbers for uids and gids: take what both allow.
                let start = uid.start.max(gid.start);
                let end = (uid.start as u64 + uid.count as u64).min(gid.start as u64 + gid.count as u64);
                let count = u32::try_from(end.saturating_sub(start as u64)).unwrap_or(u32::MAX);
                Ok(crate::userns::Pool { start, count, range: 65536 })
            }
            (None, None) => Ok(crate::userns::Pool::default()),
        }
    }
}

/// The parsed configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Token verification (`mode` must be given: `required` or `off`).
    pub auth: brig_policy::TrustConfig,
    /// Cedar policies.
    #[serde(default)]
    pub policy: brig_policy::PolicyConfig,
    /// The hash-chained audit log (required when `auth.mode` is `required`;
    /// its default path applies then).
    pub audit: Option<brig_policy::AuditConfig>,
    #[serde(default)]
    pub profiles: ProfilesSection,
    #[serde(default)]
    pub user_namespace: UserNamespaceSection,
    /// Signed run attestations; absent: none are written (and runs record it).
    pub attest: Option<crate::attestation::AttestConfig>,
    #[serde(default)]
    pub clients: ClientsSection,
    /// Where the file was read from.
    #[serde(skip)]
    pub path: PathBuf,
}

impl Config {
    /// The audit log: configured, or the default when authorization is on.
    pub fn audit_path(&self) -> Option<PathBuf> {
        match (&self.audit, self.auth.mode) {
            (Some(a), _) => Some(a.path.clone()),
            (None, AuthMode::Required) => Some(brig_policy::AuditConfig::default().path),
            (None, AuthMode::Off) => None,
        }
    }

    /// The configuration path from `--config`, `BRIG_CONFIG`, or the default
    /// (rootless: `$XDG_CONFIG_HOME/brig/config.toml` when it exists or the
    /// system-wide one does not).
    pub fn locate(flag: Option<&Path>) -> PathBuf {
        if let Some(p) = flag {
            return p.to_path_buf();
        }
        match std::env::var_os("BRIG_CONFIG") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ if crate::rootless::is_rootless() => match crate::rootless::user_config() {
                Some(user) if user.exists() || !Path::new(DEFAULT_CONFIG).exists() => user,
                _ => PathBuf::from(DEFAULT_CONFIG),
            },
            _ => PathBuf::from(DEFAULT_CONFIG),
        }
    }

    /// Loads and validates the configuration at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = match brig_files::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ConfigError::Missing(path.to_path_buf())),
            Err(source) => return Err(ConfigError::Read { path: path.to_path_buf(), source }),
        };
        Config::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        // Never the toml crate's own message: it prints the line, and a
        // secret pasted in the wrong place (or a token file given as the
        // configuration) would be in the error.
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: brig_files::located(text, e.span(), e.message()),
        })?;
        config.path = path.to_path_buf();
        let invalid =
            |e: brig_policy::ConfigError| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string() };
        config.auth.validate().map_err(invalid)?;
        config.policy.validate().map_err(invalid)?;
        if let Some(audit) = &config.audit {
            audit.validate().map_err(invalid)?;
        }
        for dir in &config.clients.state_dirs {
            // A client state directory lets clients bind host files over
            // /etc/hosts & co: it must be a real, specific directory.
            let specific = dir.is_absolute()
                && dir.components().count() >= 3
                && !dir.components().any(|c| matches!(c, std::path::Component::ParentDir));
            if !specific {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    field: "clients.state_dirs",
                    message: format!(
                        "`{}` must be an absolute path at least two directories deep, without `..` \
                         (a client's own state directory, e.g. /var/lib/rancher/k3s/agent/containerd)",
                        dir.display()
                    ),
                });
            }
        }
        if let Some(bad) = config.clients.dockerd_binaries.iter().find(|p| !p.is_absolute()) {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                field: "clients.dockerd_binaries",
                message: format!("`{}` must be an absolute path", bad.display()),
            });
        }
        if !config.profiles.dir.is_absolute() {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                field: "profiles.dir",
                message: format!(
                    "`{}` must be an absolute path (a relative one would be read from the caller's working directory)",
                    config.profiles.dir.display()
                ),
            });
        }
        if config.profiles.default.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                field: "profiles.default",
                message: "must name a profile".into(),
            });
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_config_says_how_to_fix() {
        let err = Config::load(Path::new("/nonexistent/brig.toml")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/nonexistent/brig.toml") && msg.contains("brig init"), "{msg}");
    }

    #[test]
    fn auth_must_be_explicit() {
        let err = Config::parse("[profiles]\ndefault = \"restricted\"\n", Path::new("c.toml")).unwrap_err();
        assert!(err.to_string().contains("auth"), "{err}");
        let c = Config::parse("[auth]\nmode = \"off\"\n", Path::new("c.toml")).unwrap();
        assert_eq!(c.auth.mode, AuthMode::Off);
        assert_eq!(c.profiles.default, "restricted");
    }

    #[test]
    fn client_state_dirs_must_be_specific() {
        for bad in ["/", "/var", "relative/dir/x", "/var/lib/../../etc"] {
            let text = format!("[auth]\nmode = \"off\"\n[clients]\nstate_dirs = [\"{bad}\"]\n");
            let err = Config::parse(&text, Path::new("c.toml")).unwrap_err().to_string();
            assert!(err.contains("clients.state_dirs") && err.contains(bad), "{bad}: {err}");
        }
        let text = "[auth]\nmode = \"off\"\n[clients]\nstate_dirs = [\"/var/lib/rancher/k3s/agent/containerd\"]\n";
        assert_eq!(Config::parse(text, Path::new("c.toml")).unwrap().clients.state_dirs.len(), 1);
    }

    /// Every path the configuration names is absolute: a relative one would
    /// be resolved against the working directory of whoever ran brig.
    #[test]
    fn relative_paths_are_refused() {
        for (section, field) in [
            ("[profiles]\ndir = \"profiles\"\n", "profiles.dir"),
            ("[auth]\nmode = \"off\"\njwks_file = \"jwks.json\"\n", "auth.jwks_file"),
            ("[policy]\ndir = \"policy\"\n", "policy.dir"),
            ("[audit]\npath = \"audit.log\"\n", "audit.path"),
        ] {
            let auth = if section.starts_with("[auth]") { "" } else { "[auth]\nmode = \"off\"\n" };
            let err = Config::parse(&format!("{auth}{section}"), Path::new("c.toml")).unwrap_err().to_string();
            assert!(err.contains(field) && err.contains("absolute"), "{field}: {err}");
        }
    }

    #[test]
    fn typos_are_errors() {
        let err =
            Config::parse("[auth]\nmode = \"off\"\n[profiles]\ndefualt = \"x\"\n", Path::new("c.toml")).unwrap_err();
        assert!(err.to_string().contains("defualt"), "{err}");
        let err = Config::parse("[auth]\nmode = \"maybe\"\n", Path::new("c.toml")).unwrap_err().to_string();
        assert!(err.contains("c.toml") && err.contains("line 2, column 8") && err.contains("unknown variant"), "{err}");
    }

    /// A parse error names the file, line and column, never the text: a
    /// token or key file given as the configuration, or a secret typed in
    /// the wrong field, stays out of the terminal and the logs.
    #[test]
    fn parse_errors_quote_nothing_from_the_file() {
        let token = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2VjcmV0LXNpZ25hdHVyZQ";
        for (text, at) in [
            (token.to_string(), "line 1"),
            (format!("[auth]\nmode = \"off\"\nhmac_secret = \"{token}\"\n"), "line 3, column 1"),
            (format!("[auth]\nmode = \"off\"\nissuers = \"{token}\"\n"), "line 3"),
        ] {
            let err = Config::parse(&text, Path::new("/etc/brig/config.toml")).unwrap_err().to_string();
            assert!(err.contains("/etc/brig/config.toml") && err.contains(at), "{err}");
            assert!(!err.contains("c2VjcmV0") && !err.contains("eyJ"), "the error quotes the file: {err}");
        }
    }
}
