//! brig: a hardened, runc-compatible OCI runtime.
//!
//! The `brig` binary is a thin CLI over this library; the pipeline stages live
//! in their own crates (`brig-profiles`, `brig-policy`, `brig-attest`).

pub mod attestation;
pub mod auth_cmd;
pub mod bundle;
pub mod cgclaim;
pub mod cgroup;
pub mod cli;
pub mod commands;
pub mod config;
pub mod console;
pub mod egress;
pub mod error;
pub mod events;
pub mod host;
pub mod idmap;
pub mod lifecycle;
pub mod limits;
pub mod logging;
pub mod maskcheck;
pub mod memfd;
pub mod nsowner;
pub mod nspin;
pub mod output;
pub mod pipeline;
pub mod pod;
pub mod profile_cmd;
pub mod rootless;
pub mod state;
pub mod supervisor;
pub mod tenant;
pub mod userns;

/// brig's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `brig --version`, in runc's layout (`<name> version X`, `commit:`,
/// `spec:`: Docker and go-runc read those lines).
pub const VERSION_LONG: &str = concat!(
    "version ",
    env!("CARGO_PKG_VERSION"),
    "\ncommit: v",
    env!("CARGO_PKG_VERSION"),
    "\nspec: 1.2.1",
    "\nruntime: libcontainer 0.7",
    "\nsupervisor: brig-init (static, no libc)"
);

use cli::{Cli, Command};
use error::Result;

/// Writes brig.1 and brig-<subcommand>.1 into `dir`.
fn man_pages(dir: &std::path::Path) -> Result<()> {
    let io = |e| error::Error::io("writing man pages to", dir, e);
    std::fs::create_dir_all(dir).map_err(io)?;
    let cmd = <Cli as clap::CommandFactory>::command();
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut buf).map_err(io)?;
    std::fs::write(dir.join("brig.1"), &buf).map_err(io)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("brig-{}", sub.get_name());
        let mut buf = Vec::new();
        clap_mangen::Man::new(sub.clone().name(name.clone())).render(&mut buf).map_err(io)?;
        std::fs::write(dir.join(format!("{name}.1")), &buf).map_err(io)?;
    }
    Ok(())
}

/// Runs one command; returns the process exit code.
pub fn dispatch(cli: Cli) -> Result<i32> {
    let g = &cli.global;
    match &cli.command {
        Command::Create(c) => lifecycle::create(g, &c.id, &c.opts).map(|_| 0),
        Command::Start(c) => lifecycle::start(g, &c.id).map(|_| 0),
        Command::State(c) => lifecycle::state(g, &c.id).map(|_| 0),
        Command::Kill(k) => lifecycle::kill(g, &k.id, k.signal.as_deref(), k.all).map(|_| 0),
        Command::Delete(d) => lifecycle::delete(g, &d.id, d.force).map(|_| 0),
        Command::Run(r) => lifecycle::run(g, &r.id, &r.opts, r.detach, r.keep),
        Command::Exec(e) => commands::exec(g, e),
        Command::Ps(p) => commands::ps(g, p).map(|_| 0),
        Command::Pause(c) => commands::pause(g, &c.id).map(|_| 0),
        Command::Resume(c) => commands::resume(g, &c.id).map(|_| 0),
        Command::Update(u) => commands::update(g, u).map(|_| 0),
        Command::Events(e) => commands::events(g, &e.id, e.stats, e.interval).map(|_| 0),
        Command::Features => commands::features().map(|_| 0),
        Command::Spec(s) => commands::spec(s).map(|_| 0),
        Command::List(l) => commands::list(g, l).map(|_| 0),
        Command::Checkpoint(_) | Command::Restore(_) => {
            Err(error::Error::Usage("checkpoint/restore is not supported by brig".into()))
        }
        Command::Profile(p) => profile_cmd::run(g, p),
        Command::Policy(p) => auth_cmd::policy(g, p),
        Command::Token(t) => auth_cmd::token(t),
        Command::Audit(a) => auth_cmd::audit(g, a),
        Command::Init(i) => auth_cmd::init(i),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "brig", &mut std::io::stdout());
            Ok(0)
        }
        Command::Man { out } => man_pages(out).map(|_| 0),
        Command::Attest(a) => match brig_attest::cli::run(a.clone()) {
            Ok(()) => Ok(0),
            Err(e) => Err(error::Error::Usage(format!("{e:#}"))),
        },
    }
}
