//! `brig profile list|show|lint|diff`.

use std::path::{Path, PathBuf};

use brig_profiles::{lint, ProfileSet};

use crate::cli::{GlobalOpts, ProfileCmd};
use crate::config::Config;
use crate::error::{Error, Result};

/// The profile directory from the configuration. A configuration that does
/// not load is an error (the profiles it names are what a launch uses, and
/// `lint` must not pass a directory it never read); none at the default
/// location means the built-ins alone, as on a machine without brig set up.
fn profile_dir(g: &GlobalOpts) -> Result<Option<PathBuf>> {
    match Config::load(&Config::locate(g.config.as_deref())) {
        Ok(c) => Ok(Some(c.profiles.dir)),
        Err(crate::config::ConfigError::Missing(_)) if g.config.is_none() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Lints one file; returns the number of problems (a file that cannot be
/// read or parsed is one).
fn lint_file(path: &Path) -> usize {
    let shown = brig_files::printable(&path.display().to_string());
    let source = match brig_files::read_to_string(path) {
        Ok(s) => s,
        Err(e) => {
            crate::outln!("{shown}: cannot read: {}", brig_files::printable(&e.to_string()));
            return 1;
        }
    };
    let profile = match brig_profiles::parse(&source, &shown) {
        Ok(p) => p,
        Err(e) => {
            crate::outln!("{}", brig_files::printable(&e.to_string()));
            return 1;
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
        crate::outln!("{shown}: {}", brig_files::printable(&f.to_string()));
    }
    problems.len()
}

pub fn run(g: &GlobalOpts, cmd: &ProfileCmd) -> Result<i32> {
    let load = || ProfileSet::load(profile_dir(g)?.as_deref()).map_err(|e| Error::Usage(e.to_string()));
    match cmd {
        ProfileCmd::List => {
            for p in load()?.iter() {
                crate::outln!(
                    "{:<12} {:<10} {}  {}",
                    brig_files::printable(&p.profile.name),
                    brig_files::printable(&p.origin.to_string()),
                    &p.digest[..19],
                    p.profile.description
                );
            }
            Ok(0)
        }
        ProfileCmd::Show { name, compiled } => {
            let set = load()?;
            let p = set.get(name).map_err(|e| Error::Usage(e.to_string()))?;
            crate::outln!(
                "# profile `{}` ({}), {}",
                brig_files::printable(&p.profile.name),
                brig_files::printable(&p.origin.to_string()),
                p.digest
            );
            // The file as written (the output layer escapes control
            // characters; the rest, a description's ZWNJ too, stays).
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
            // The configured directory may not exist (a launch then uses the
            // built-ins); a path given by hand must.
            let targets: Vec<PathBuf> = if paths.is_empty() {
                profile_dir(g)?.into_iter().filter(|d| d.exists()).collect()
            } else {
                paths.clone()
            };
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
                problems += lint_file(f);
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
                crate::outln!("{}", brig_files::printable(&line));
            }
            Ok(0)
        }
    }
}
