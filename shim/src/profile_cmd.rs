//! `brig profile list|show|lint|diff`.

use std::path::{Path, PathBuf};

use brig_profiles::{lint, ProfileSet};

use crate::cli::{GlobalOpts, ProfileCmd};
use crate::config::Config;
use crate::error::{Error, Result};

/// The profile directory from the configuration, if there is one.
fn profile_dir(g: &GlobalOpts) -> Option<PathBuf> {
    Config::load(&Config::locate(g.config.as_deref())).ok().map(|c| c.profiles.dir)
}

fn lint_file(path: &Path) -> Result<usize> {
    let source = std::fs::read_to_string(path).map_err(|e| Error::io("reading", path, e))?;
    let profile = match brig_profiles::parse(&source, &path.display().to_string()) {
        Ok(p) => p,
        Err(e) => {
            crate::outln!("{e}");
            return Ok(1);
        }
    };
    let mut problems = lint::lint(&profile, &source);
    if path.file_stem().and_then(|s| s.to_str()) != Some(profile.name.as_str()) {
        problems.push(lint::Finding {
            field: "name".into(),
            line: None,
            message: format!("the file must be named `{}.toml`", profile.name),
        });
    }
    for f in &problems {
        crate::outln!("{}: {f}", path.display());
    }
    Ok(problems.len())
}

pub fn run(g: &GlobalOpts, cmd: &ProfileCmd) -> Result<i32> {
    let load = || ProfileSet::load(profile_dir(g).as_deref()).map_err(|e| Error::Usage(e.to_string()));
    match cmd {
        ProfileCmd::List => {
            for p in load()?.iter() {
                crate::outln!(
                    "{:<12} {:<10} {}  {}",
                    p.profile.name,
                    p.origin.to_string(),
                    &p.digest[..19],
                    p.profile.description
                );
            }
            Ok(0)
        }
        ProfileCmd::Show { name, compiled } => {
            let set = load()?;
            let p = set.get(name).map_err(|e| Error::Usage(e.to_string()))?;
            crate::outln!("# profile `{}` ({}), {}", p.profile.name, p.origin, p.digest);
            crate::out!("{}", p.source);
            if *compiled {
                if let Some(s) = &p.profile.seccomp {
                    for arch in [brig_profiles::seccomp::Arch::X86_64, brig_profiles::seccomp::Arch::Aarch64] {
                        let c = brig_profiles::seccomp::compile(s, arch).map_err(|e| Error::Usage(e.to_string()))?;
                        crate::outln!(
                            "# seccomp {}: {} programs, {} instructions, {}",
                            arch.name(),
                            c.programs.len(),
                            c.instructions(),
                            c.digest
                        );
                    }
                }
                if let Some(l) = &p.profile.landlock {
                    crate::outln!("# landlock: mode {:?}, scopes {:?}", l.mode, l.scope);
                }
            }
            Ok(0)
        }
        ProfileCmd::Lint { paths } => {
            let targets: Vec<PathBuf> =
                if paths.is_empty() { profile_dir(g).into_iter().collect() } else { paths.clone() };
            let mut files = Vec::new();
            for t in targets {
                if t.is_dir() {
                    let mut entries: Vec<PathBuf> = std::fs::read_dir(&t)
                        .map_err(|e| Error::io("reading", &t, e))?
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                        .collect();
                    entries.sort();
                    files.extend(entries);
                } else {
                    files.push(t);
                }
            }
            if files.is_empty() && !paths.is_empty() {
                let named: Vec<String> = paths.iter().map(|p| format!("`{}`", p.display())).collect();
                return Err(Error::Usage(format!("nothing to lint: no `*.toml` profile file in {}", named.join(", "))));
            }
            let mut problems = 0;
            for f in &files {
                problems += lint_file(f)?;
            }
            if problems == 0 {
                crate::outln!("{} profile file(s): no problems", files.len());
                Ok(0)
            } else {
                Ok(1)
            }
        }
        ProfileCmd::Diff { a, b } => {
            let set = load()?;
            let pa = set.get(a).map_err(|e| Error::Usage(e.to_string()))?;
            let pb = set.get(b).map_err(|e| Error::Usage(e.to_string()))?;
            for line in brig_profiles::diff(&pa.profile, &pb.profile) {
                crate::outln!("{line}");
            }
            Ok(0)
        }
    }
}
