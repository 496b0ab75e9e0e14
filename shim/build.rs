//! Builds the freestanding in-container supervisor (`supervisor/`, binary
//! `brig-init`) and embeds it into `brig`, so that `brig` is one file that
//! Docker, Podman and containerd can be pointed at.
//!
//! The supervisor needs `panic = "abort"` in every profile and no libc, which a
//! workspace member cannot have, so it is its own Cargo project built here into
//! OUT_DIR with its own target directory (no lock contention with this build).
// A build script reports failure by panicking: cargo shows the message.
#![allow(clippy::expect_used)]

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let supervisor = manifest_dir.join("../supervisor");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target = env::var("TARGET").expect("cargo sets TARGET");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());

    for f in ["Cargo.toml", "Cargo.lock", "build.rs", "src"] {
        println!("cargo:rerun-if-changed={}", supervisor.join(f).display());
    }
    for e in ["src/main.rs", "src/plan.rs", "src/sys.rs", "src/mem.rs"] {
        println!("cargo:rerun-if-changed={}", supervisor.join(e).display());
    }

    let target_dir = out_dir.join("supervisor-target");
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&supervisor)
        .args(["build", "--release", "--locked", "--target", &target, "--target-dir"])
        .arg(&target_dir);
    // Do not leak this build's settings into the nested one.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
        "CARGO_PRIMARY_PACKAGE",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("failed to run cargo for the supervisor");
    assert!(status.success(), "building the supervisor (supervisor/) failed");
    let bin = target_dir.join(&target).join("release").join("brig-init");
    let dest = out_dir.join("brig-init");
    std::fs::copy(&bin, &dest).expect("failed to copy the supervisor binary");
}
