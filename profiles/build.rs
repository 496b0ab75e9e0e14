//! Prepares the built-in profiles at build time, so that a launch does not:
//!
//! - converts them from TOML to JSON. Every launch parses its profile, and the
//!   built-in `restricted` is 7 KB of TOML (mostly the seccomp allowlist):
//!   parsing it as TOML took ≈ 0.12 ms of a launch's CPU, as JSON ≈ 0.02 ms
//!   (docs/launch.md). The TOML files stay the source (what `brig profile
//!   show` prints and what people edit); the JSON is the same document, and a
//!   unit test checks that both give the same profile.
//! - compiles their `[seccomp]` sections to BPF for every architecture brig
//!   supports, with the crate's own compiler (`src/seccomp.rs`, included
//!   below), into `prebuilt_seccomp.rs` (`src/prebuilt.rs` serves them; a
//!   unit test checks each against a fresh compile).

use std::fmt::Write as _;
use std::path::PathBuf;

#[allow(dead_code)]
#[path = "src/seccomp.rs"]
mod seccomp;

fn main() -> Result<(), String> {
    let var = |name: &str| std::env::var_os(name).map(PathBuf::from).ok_or(format!("cargo did not set {name}"));
    let (manifest, out) = (var("CARGO_MANIFEST_DIR")?, var("OUT_DIR")?);
    println!("cargo:rerun-if-changed={}", manifest.join("src/seccomp.rs").display());
    // Every built-in: each TOML file in builtin/ (lib.rs includes them by name).
    let dir = manifest.join("builtin");
    println!("cargo:rerun-if-changed={}", dir.display());
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    let mut paths = Vec::new();
    for entry in entries {
        paths.push(entry.map_err(|e| format!("reading {}: {e}", dir.display()))?.path());
    }
    paths.sort();
    let mut prebuilt = String::from("static PREBUILT: &[Prebuilt] = &[\n");
    for path in paths {
        let Some(name) =
            path.file_stem().and_then(|s| s.to_str()).filter(|_| path.extension().is_some_and(|x| x == "toml"))
        else {
            continue;
        };
        println!("cargo:rerun-if-changed={}", path.display());
        let text = std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let value: toml::Value = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let json = serde_json::to_string(&value).map_err(|e| format!("{}: {e}", path.display()))?;
        let target = out.join(format!("{name}.json"));
        std::fs::write(&target, json).map_err(|e| format!("writing {}: {e}", target.display()))?;

        let Some(section) = value.get("seccomp") else { continue };
        let section: seccomp::SeccompSection =
            section.clone().try_into().map_err(|e| format!("{}: [seccomp]: {e}", path.display()))?;
        for arch in [seccomp::Arch::X86_64, seccomp::Arch::Aarch64] {
            let compiled = seccomp::compile(&section, arch)
                .map_err(|e| format!("{}: [seccomp] on {}: {e}", path.display(), arch.name()))?;
            let fingerprint = seccomp::fingerprint(&section, arch);
            let programs: Vec<String> = compiled.programs.iter().map(|p| format!("&{p:?}")).collect();
            let _ = writeln!(
                prebuilt,
                "    // {name}, {arch}\n    Prebuilt {{ fingerprint: {fingerprint:?}, arch: {arch:?}, programs: &[{programs}], digest: {digest:?} }},",
                arch = arch.name(),
                programs = programs.join(", "),
                digest = compiled.digest,
            );
        }
    }
    prebuilt.push_str("];\n");
    let target = out.join("prebuilt_seccomp.rs");
    std::fs::write(&target, prebuilt).map_err(|e| format!("writing {}: {e}", target.display()))?;
    Ok(())
}
