//! Converts the built-in profiles from TOML to JSON at build time.
//!
//! Every launch parses its profile, and the built-in `restricted` is 7 KB of
//! TOML (mostly the seccomp allowlist): parsing it as TOML took ≈ 0.12 ms of a
//! launch's CPU, as JSON ≈ 0.02 ms (docs/launch.md). The TOML files stay the
//! source (what `brig profile show` prints and what people edit); the JSON is
//! the same document, and a unit test checks that both give the same profile.

use std::path::PathBuf;

fn main() -> Result<(), String> {
    let var = |name: &str| std::env::var_os(name).map(PathBuf::from).ok_or(format!("cargo did not set {name}"));
    let (manifest, out) = (var("CARGO_MANIFEST_DIR")?, var("OUT_DIR")?);
    // Every built-in: each TOML file in builtin/ (lib.rs includes them by name).
    let dir = manifest.join("builtin");
    println!("cargo:rerun-if-changed={}", dir.display());
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| format!("reading {}: {e}", dir.display()))?.path();
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
    }
    Ok(())
}
