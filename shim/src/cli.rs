//! The command line: runc's grammar (global flags, subcommands, flags after the
//! container id) plus brig's own commands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// brig: a hardened, runc-compatible OCI runtime that authorizes, confines
/// and attests every job.
#[derive(Debug, Parser)]
#[command(name = "brig", version = crate::VERSION_LONG, disable_help_subcommand = true, disable_version_flag = true)]
pub struct Cli {
    /// Print the version (`-v` as runc, `-V` too).
    #[arg(short = 'v', long = "version", visible_short_alias = 'V', action = clap::ArgAction::Version, global = false)]
    pub version: Option<bool>,
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

/// runc's global flags (accepted before the subcommand, as runc does).
#[derive(Debug, Args, Clone, Default)]
pub struct GlobalOpts {
    /// Directory for container state
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Log file (default: stderr)
    #[arg(long, global = true, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Log format: text or json (runc's JSON lines, which containerd's shim parses)
    #[arg(long, global = true, value_name = "FORMAT", value_parser = ["text", "json"])]
    pub log_format: Option<String>,
    /// Log level (debug, info, warn, error)
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Enable debug logging
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd for cgroups (accepted; brig falls back to cgroupfs when systemd is not running)
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    /// Accepted for runc compatibility (rootless mode is detected)
    #[arg(long = "rootless", id = "global_rootless", value_name = "BOOL", num_args = 0..=1, default_missing_value = "auto")]
    pub rootless: Option<String>,
    /// Accepted for runc compatibility (checkpointing is not supported)
    #[arg(long, global = true, value_name = "PATH", hide = true)]
    pub criu: Option<PathBuf>,
    /// brig configuration file [default: $BRIG_CONFIG or /etc/brig/config.toml]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container (authorize, harden, measure; the job waits for `start`)
    Create(Create),
    /// Start a created container
    Start(ContainerId),
    /// Print a container's state as JSON
    State(ContainerId),
    /// Send a signal to a container's init (default SIGTERM)
    Kill(Kill),
    /// Delete a container (writes its attestation)
    Delete(Delete),
    /// Run a new process in a running container
    Exec(Exec),
    /// List the processes of a container
    Ps(Ps),
    /// Freeze all processes of a container
    Pause(ContainerId),
    /// Thaw a paused container
    Resume(ContainerId),
    /// Update a container's resource limits
    Update(Update),
    /// Print container statistics
    Events(Events),
    /// Print the features this runtime supports as JSON
    Features,
    /// Write a template config.json
    Spec(SpecCmd),
    /// Create and start a container, and wait for it unless --detach
    Run(Run),
    /// List containers
    List(List),
    /// Not supported by brig (accepted so that callers get a clear error)
    #[command(hide = true)]
    Checkpoint(Unsupported),
    /// Not supported by brig
    #[command(hide = true)]
    Restore(Unsupported),
    /// Hardening profiles: list, show, lint, diff
    #[command(subcommand)]
    Profile(ProfileCmd),
    /// Run attestations: verify, show, keygen
    #[command(subcommand)]
    Attest(brig_attest::cli::Command),
    /// Launch policies: validate, test, explain
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Development helpers for job tokens: keygen, mint
    #[command(subcommand)]
    Token(TokenCmd),
    /// The audit log: verify
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Write a development configuration with generated keys and example policies
    Init(InitOpts),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions {
        #[arg(value_parser = clap::value_parser!(clap_complete::Shell))]
        shell: clap_complete::Shell,
    },
    /// Write man pages (brig.1 and one per subcommand) into DIR
    Man {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Parse and validate policies against the schema (strict), with file, line and column
    Validate {
        /// Policy directory [default: the configured one]
        dir: Option<PathBuf>,
    },
    /// Run a file of test cases (claims + context or bundle, expected decision)
    Test { cases: PathBuf },
    /// The decision, the determining policies and any errors for a launch, without launching
    Explain {
        #[arg(short, long, value_name = "DIR")]
        bundle: PathBuf,
        /// A file holding the token [default: the bundle's]
        #[arg(long, value_name = "FILE")]
        token: Option<PathBuf>,
        /// The container id `create` would get (for `context.container_source`)
        #[arg(long, value_name = "ID")]
        id: Option<String>,
    },
}

/// Development helpers: for local use and tests, not for production issuers.
#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Generate a signing key and add its public key to DIR/jwks.json
    Keygen {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// EdDSA, ES256 or RS256
        #[arg(long, default_value = "EdDSA")]
        alg: String,
        /// Key file name (DIR/NAME.key)
        #[arg(long, default_value = "token")]
        name: String,
    },
    /// Mint a token signed with a key made by `keygen`
    Mint {
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        #[arg(long)]
        iss: String,
        #[arg(long)]
        sub: String,
        #[arg(long, default_value = "brig")]
        aud: String,
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Lifetime, e.g. 10m
        #[arg(long, default_value = "10m")]
        ttl: String,
        /// Leave out the random `jti` (single-use configurations need one)
        #[arg(long)]
        no_jti: bool,
        #[arg(long)]
        image_digest: Option<String>,
        /// More claims, as a JSON object
        #[arg(long, value_name = "JSON")]
        claims: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Check the hash chain; name the first bad line. With anchors (from
    /// attestations or given as SEQ:SHA256), also catch a log rewritten with
    /// recomputed hashes or cut back before an anchored record
    Verify {
        /// The log [default: the configuration's `[audit] path`]
        path: Option<PathBuf>,
        /// A record that must be in the log as written (SEQ:SHA256, as
        /// `brig attest show` prints it); repeatable
        #[arg(long = "anchor", value_name = "SEQ:SHA256")]
        anchors: Vec<String>,
        /// A run's attestation (DSSE envelope, or a directory of them) whose
        /// launch decision must be in the log; needs --key; repeatable
        #[arg(long = "attested", value_name = "ENVELOPE|DIR")]
        attested: Vec<PathBuf>,
        /// Public key the attestations must be signed with; repeatable
        #[arg(long = "key", value_name = "PUBKEY")]
        keys: Vec<PathBuf>,
        /// An earlier generation of the log (moved aside by a rotation),
        /// checked too: every anchor must be in one of the logs given;
        /// repeatable
        #[arg(long = "rotated", value_name = "LOG")]
        rotated: Vec<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct InitOpts {
    /// Configuration directory [default: /etc/brig; rootless: ~/.config/brig]
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Directory for the audit log, attestations, caches [default:
    /// /var/lib/brig; rootless: ~/.local/share/brig]
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// The development token issuer
    #[arg(long, default_value = "https://brig.local/dev")]
    pub issuer: String,
    /// Replace an existing configuration
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ContainerId {
    /// Container id
    pub id: String,
}

#[derive(Debug, Args)]
pub struct Unsupported {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

#[derive(Debug, Args, Clone)]
pub struct CreateOpts {
    /// Bundle directory (config.json and the root filesystem)
    #[arg(short, long, default_value = ".", value_name = "DIR")]
    pub bundle: PathBuf,
    /// Unix socket that receives the pseudo-terminal's master fd
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// File to write the container's init pid to
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Do not use pivot_root (for ramdisk roots)
    #[arg(long)]
    pub no_pivot: bool,
    /// Do not create a new session keyring
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass N extra file descriptors (from 3) to the container
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub preserve_fds: i32,
}

#[derive(Debug, Args)]
pub struct Create {
    /// Container id
    pub id: String,
    #[command(flatten)]
    pub opts: CreateOpts,
}

#[derive(Debug, Args)]
pub struct Run {
    /// Container id
    pub id: String,
    #[command(flatten)]
    pub opts: CreateOpts,
    /// Detach: return once the container has started
    #[arg(short, long)]
    pub detach: bool,
    /// Keep the container's state after it exits
    #[arg(long)]
    pub keep: bool,
    /// Accepted for runc compatibility
    #[arg(long)]
    pub no_subreaper: bool,
}

#[derive(Debug, Args)]
pub struct Kill {
    /// Container id
    pub id: String,
    /// Signal name or number (default SIGTERM)
    pub signal: Option<String>,
    /// Send the signal to every process in the container
    #[arg(short, long)]
    pub all: bool,
    /// Accepted for runc compatibility (ignored)
    #[arg(long, hide = true)]
    pub pid: Option<i32>,
}

#[derive(Debug, Args)]
pub struct Delete {
    /// Container id
    pub id: String,
    /// Kill the container if it is still running
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct Exec {
    /// Container id
    pub id: String,
    /// Command and arguments (when --process is not given)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// process.json describing the process
    #[arg(short, long, value_name = "FILE")]
    pub process: Option<PathBuf>,
    /// Do not wait for the process
    #[arg(short, long)]
    pub detach: bool,
    /// File to write the process's pid to
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pseudo-terminal's master fd
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Allocate a pseudo-terminal
    #[arg(short, long)]
    pub tty: bool,
    /// Working directory
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// Environment variable (KEY=VALUE), repeatable
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// User: UID[:GID]
    #[arg(short, long, value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// Additional group ids, repeatable
    #[arg(short = 'g', long = "additional-gids", value_name = "GID")]
    pub additional_gids: Vec<u32>,
    /// Add a capability (still subject to the container's profile)
    #[arg(short = 'c', long, value_name = "CAP")]
    pub cap: Vec<String>,
    /// Set no_new_privs
    #[arg(long)]
    pub no_new_privs: bool,
    /// Pass N extra file descriptors (from 3) to the process
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub preserve_fds: i32,
    /// Accepted for runc compatibility (no LSM labels here)
    #[arg(long, value_name = "LABEL", hide = true)]
    pub process_label: Option<String>,
    /// Accepted for runc compatibility (no LSM here)
    #[arg(long, value_name = "PROFILE", hide = true)]
    pub apparmor: Option<String>,
    /// Allow exec in a paused container
    #[arg(long)]
    pub ignore_paused: bool,
    /// Run in a sub-cgroup of the container
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<String>,
}

#[derive(Debug, Args)]
pub struct Ps {
    /// Container id
    pub id: String,
    /// Output format: table or json
    #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
    /// Options passed to ps(1) for the table format
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct Update {
    /// Container id
    pub id: String,
    /// JSON file with the new linux.resources ("-" for stdin); other flags are then ignored.
    /// As with runc, -1 means unlimited (`--memory -1`).
    #[arg(short, long, value_name = "FILE")]
    pub resources: Option<PathBuf>,
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    #[arg(long)]
    pub cpu_period: Option<u64>,
    #[arg(long, allow_negative_numbers = true)]
    pub cpu_quota: Option<i64>,
    #[arg(long)]
    pub cpu_share: Option<u64>,
    #[arg(long)]
    pub cpu_rt_period: Option<u64>,
    #[arg(long, allow_negative_numbers = true)]
    pub cpu_rt_runtime: Option<i64>,
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    #[arg(long, allow_negative_numbers = true, value_parser = parse_ram)]
    pub memory: Option<i64>,
    #[arg(long, allow_negative_numbers = true, value_parser = parse_ram)]
    pub memory_reservation: Option<i64>,
    #[arg(long, allow_negative_numbers = true, value_parser = parse_ram)]
    pub memory_swap: Option<i64>,
    #[arg(long, allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// Accepted and ignored, as runc does (kernel memory limits are gone).
    #[arg(long, hide = true, allow_negative_numbers = true, value_parser = parse_ram)]
    pub kernel_memory: Option<i64>,
    #[arg(long, hide = true, allow_negative_numbers = true, value_parser = parse_ram)]
    pub kernel_memory_tcp: Option<i64>,
    #[arg(long, hide = true)]
    pub l3_cache_schema: Option<String>,
    #[arg(long, hide = true)]
    pub mem_bw_schema: Option<String>,
}

#[derive(Debug, Args)]
pub struct Events {
    /// Container id
    pub id: String,
    /// Print statistics once and exit
    #[arg(long)]
    pub stats: bool,
    /// Time between statistics: a Go duration as runc takes it (`5s`,
    /// `1m30s`, `500ms`) or seconds
    #[arg(long, default_value = "5s", value_parser = parse_interval)]
    pub interval: std::time::Duration,
}

/// A size as runc's `update` takes it (`units.RAMInBytes`): bytes, or a
/// number with a binary unit `k`, `m`, `g`, `t`, `p` (an optional `b` or
/// `ib` after it, any case); `-1` is unlimited.
pub fn parse_ram(s: &str) -> Result<i64, String> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i64>() {
        return Ok(n);
    }
    let lower = t.to_ascii_lowercase();
    let digits = lower.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &lower[digits.len()..];
    let factor: i64 = match unit.trim_end_matches("ib").trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return Err(format!("`{s}`: not a size (e.g. 512M, 2g, 1048576)")),
    };
    let value: f64 = digits.trim().parse().map_err(|_| format!("`{s}`: not a size (e.g. 512M, 2g, 1048576)"))?;
    let bytes = value * factor as f64;
    if !(0.0..9.2e18).contains(&bytes) {
        return Err(format!("`{s}`: out of range"));
    }
    Ok(bytes as i64)
}

/// A Go duration (`1h2m3.5s`, `500ms`, `10us`) or a number of seconds.
pub fn parse_interval(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("`{s}`: not a duration (e.g. 5s, 1m, 500ms)");
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let value: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += value * seconds;
        rest = &rest[unit_len..];
    }
    std::time::Duration::try_from_secs_f64(total).map_err(|_| bad())
}

#[derive(Debug, Args)]
pub struct SpecCmd {
    /// Bundle directory to write config.json into
    #[arg(short, long, value_name = "DIR")]
    pub bundle: Option<PathBuf>,
    /// Template for a rootless container
    #[arg(long)]
    pub rootless: bool,
}

#[derive(Debug, Args)]
pub struct List {
    /// Output format: table or json
    #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
    /// Print only container ids
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum ProfileCmd {
    /// List the available profiles
    List,
    /// Print a profile (and what it compiles to)
    Show {
        name: String,
        /// Also print the compiled seccomp and Landlock summary
        #[arg(long)]
        compiled: bool,
    },
    /// Check profile files for mistakes and contradictions
    Lint {
        /// Profile files or directories (default: the configured profile directory)
        paths: Vec<PathBuf>,
    },
    /// Show the differences between two profiles
    Diff { a: String, b: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_as_runc_takes_them() {
        assert_eq!(parse_ram("1048576"), Ok(1 << 20));
        assert_eq!(parse_ram("-1"), Ok(-1));
        assert_eq!(parse_ram("200M"), Ok(200 << 20));
        assert_eq!(parse_ram("2g"), Ok(2 << 30));
        assert_eq!(parse_ram("512KiB"), Ok(512 << 10));
        assert_eq!(parse_ram("1.5GB"), Ok(3 << 29));
        assert!(parse_ram("12x").is_err() && parse_ram("M").is_err() && parse_ram("").is_err());
        let d = std::time::Duration::from_millis;
        assert_eq!(parse_interval("5s"), Ok(d(5000)));
        assert_eq!(parse_interval("7"), Ok(d(7000)));
        assert_eq!(parse_interval("1m30s"), Ok(d(90_000)));
        assert_eq!(parse_interval("500ms"), Ok(d(500)));
        assert!(parse_interval("5x").is_err() && parse_interval("").is_err() && parse_interval("s").is_err());
    }
}
