//! `brig-attest`: verify and show brig's attestations, and make signing keys,
//! on any machine (no runtime needed).

#![forbid(unsafe_code)]

use std::process::ExitCode;

use brig_attest::cli::Command;
use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "brig-attest", version, about = "Verify and show brig's per-run attestations")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

fn main() -> ExitCode {
    match brig_attest::cli::run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Whatever the error quotes (a file name, serde's reading of
            // the envelope) is shown escaped: one line, no escape sequence.
            eprintln!("brig-attest: {}", brig_attest::clean(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}
