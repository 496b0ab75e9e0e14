//! The `brig` binary: parse, log, dispatch, and report errors as runc does.

use clap::Parser;

use brig_shim::cli::Cli;
use brig_shim::logging::{self, LogFormat};

fn main() {
    // For the documentation tests: check that a command line parses, and
    // stop (docs/ examples must not drift from the CLI).
    if std::env::var_os("BRIG_PARSE_ONLY").is_some() {
        match Cli::try_parse() {
            Ok(_) => std::process::exit(0),
            Err(e)
                if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion) =>
            {
                std::process::exit(0)
            }
            Err(e) => {
                let _ = e.print();
                std::process::exit(2);
            }
        }
    }
    // A usage error exits 1, as runc's do (help and version exit 0).
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            std::process::exit(match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => 1,
            });
        }
    };
    // runc exits 255 when `exec` itself fails (the process's own exit code
    // is passed through otherwise), so a caller can tell the two apart.
    let failure = match cli.command {
        brig_shim::cli::Command::Exec(_) => 255,
        _ => 1,
    };
    let g = &cli.global;
    let format = match g.log_format.as_deref() {
        Some("json") => LogFormat::Json,
        _ => LogFormat::Text,
    };
    let level = match (g.debug, g.log_level.as_deref()) {
        (true, _) | (_, Some("debug")) => tracing::Level::DEBUG,
        (_, Some("info")) => tracing::Level::INFO,
        (_, Some("error")) => tracing::Level::ERROR,
        _ => tracing::Level::WARN,
    };
    let to_file = g.log.is_some();
    if let Err(e) = logging::init(g.log.as_deref(), format, level) {
        eprintln!("brig: cannot open the log file: {e}");
        std::process::exit(1);
    }
    match brig_shim::dispatch(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            logging::report_error(&brig_shim::error::chain(&e), to_file);
            std::process::exit(failure);
        }
    }
}
