//! brig's hardening profiles.
//!
//! A [`Profile`] is data (TOML); this crate parses and lints profiles, ships the
//! built-in `restricted`, `standard` and `permissive`, and compiles a profile
//! into what the kernel enforces: OCI spec fields ([`harden`]), seccomp BPF
//! ([`seccomp`]), Landlock rules ([`landlock`]) and the egress ruleset
//! ([`egress`], nftables).
#![forbid(unsafe_code)]

pub mod clients;
pub mod egress;
pub mod harden;
pub mod landlock;
pub mod lint;
pub mod model;
pub mod prebuilt;
pub mod seccomp;
pub mod units;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use egress::{EgressCounts, EgressPlan, EgressRule};
pub use harden::{harden, HardenError, Hardened, Host, JobAsks, JobPlan, Refusal, Tightening};
pub use model::Profile;
pub use units::{ByteSize, Duration};

/// The profile used when neither the job nor the configuration names one.
pub const DEFAULT_PROFILE: &str = "restricted";

/// The built-in profiles: (name, TOML source).
pub const BUILTIN: &[(&str, &str)] = &[
    ("restricted", include_str!("../builtin/restricted.toml")),
    ("standard", include_str!("../builtin/standard.toml")),
    ("permissive", include_str!("../builtin/permissive.toml")),
];

/// The built-in profiles as JSON, converted from [`BUILTIN`] by build.rs:
/// what a launch parses (JSON parses ≈ 6× faster than the same TOML).
const BUILTIN_JSON: &[(&str, &str)] = &[
    ("restricted", include_str!(concat!(env!("OUT_DIR"), "/restricted.json"))),
    ("standard", include_str!(concat!(env!("OUT_DIR"), "/standard.json"))),
    ("permissive", include_str!(concat!(env!("OUT_DIR"), "/permissive.json"))),
];

/// The built-in profile `name`, if there is one.
fn builtin(name: &str) -> Option<Result<LoadedProfile, ProfileError>> {
    let (_, source) = BUILTIN.iter().find(|(n, _)| *n == name)?;
    let json = BUILTIN_JSON.iter().find(|(n, _)| *n == name).map(|(_, j)| *j);
    // INVARIANT: build.rs writes a JSON file for every built-in; the TOML is
    // the fallback should the two lists ever disagree.
    let profile = match json {
        Some(json) => serde_json::from_str::<Profile>(json)
            .map_err(|e| ProfileError::Parse { origin: name.to_string(), message: e.to_string() }),
        None => parse(source, name),
    };
    Some(profile.map(|profile| {
        let digest = digest(&profile);
        LoadedProfile { profile, origin: Origin::Builtin, source: source.to_string(), digest }
    }))
}

/// Why a profile could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("reading profile `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("{origin}: the file declares profile `{declared}`; name the file `{declared}.toml`")]
    NameMismatch { origin: String, declared: String },
    #[error("no profile named `{name}` (known: {known})")]
    Unknown { name: String, known: String },
}

/// Where a profile came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Builtin,
    File(PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Builtin => f.write_str("built-in"),
            Origin::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A parsed profile with its source text and digest.
#[derive(Debug, Clone)]
pub struct LoadedProfile {
    pub profile: Profile,
    pub origin: Origin,
    pub source: String,
    /// `sha256:` over the profile's canonical JSON form.
    pub digest: String,
}

/// Parses one profile from TOML text; `origin` names it in errors.
pub fn parse(source: &str, origin: &str) -> Result<Profile, ProfileError> {
    toml::from_str::<Profile>(source).map_err(|e| ProfileError::Parse {
        origin: origin.to_string(),
        message: brig_files::located(source, e.span(), e.message()),
    })
}

/// The digest of a profile's meaning (not of its formatting).
pub fn digest(profile: &Profile) -> String {
    // INVARIANT: Profile holds only strings, numbers, bools, lists and maps, so
    // serializing it to JSON cannot fail.
    let json = serde_json::to_vec(profile).unwrap_or_default();
    format!("sha256:{}", hex::encode(Sha256::digest(&json)))
}

/// The built-in profiles plus those in a directory (which override built-ins
/// of the same name).
#[derive(Debug, Clone)]
pub struct ProfileSet {
    profiles: BTreeMap<String, LoadedProfile>,
}

impl ProfileSet {
    /// Only the built-in profiles.
    pub fn builtin() -> ProfileSet {
        let mut profiles = BTreeMap::new();
        for (name, _) in BUILTIN {
            // INVARIANT: the built-in profiles are parsed by the unit tests.
            if let Some(Ok(loaded)) = builtin(name) {
                profiles.insert(name.to_string(), loaded);
            }
        }
        ProfileSet { profiles }
    }

    /// Built-ins overridden by `dir/*.toml` (a missing directory is not an error).
    pub fn load(dir: Option<&Path>) -> Result<ProfileSet, ProfileError> {
        let mut set = ProfileSet::builtin();
        let Some(dir) = dir else { return Ok(set) };
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(set),
            Err(source) => return Err(ProfileError::Read { path: dir.to_path_buf(), source }),
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for path in files {
            let loaded = load_file(&path)?;
            set.profiles.insert(loaded.profile.name.clone(), loaded);
        }
        Ok(set)
    }

    /// The profile `name` as a launch sees it: every file in `dir` is parsed
    /// (a broken override fails every launch, closed), but of the built-ins
    /// only the one asked for — a launch does not pay for parsing the others.
    pub fn load_one(dir: Option<&Path>, name: &str) -> Result<LoadedProfile, ProfileError> {
        let mut found = None;
        if let Some(dir) = dir {
            let entries = match std::fs::read_dir(dir) {
                Ok(e) => Some(e),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(source) => return Err(ProfileError::Read { path: dir.to_path_buf(), source }),
            };
            let mut files: Vec<PathBuf> = entries
                .into_iter()
                .flatten()
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            files.sort();
            for path in files {
                let loaded = load_file(&path)?;
                if loaded.profile.name == name {
                    found = Some(loaded);
                }
            }
        }
        if let Some(p) = found {
            return Ok(p);
        }
        match builtin(name) {
            Some(loaded) => loaded,
            None => ProfileSet::load(dir)?.get(name).cloned(),
        }
    }

    pub fn get(&self, name: &str) -> Result<&LoadedProfile, ProfileError> {
        self.profiles.get(name).ok_or_else(|| ProfileError::Unknown {
            name: name.to_string(),
            known: self.profiles.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = &LoadedProfile> {
        self.profiles.values()
    }
}

/// Loads one profile file; its file name must match the profile's name.
pub fn load_file(path: &Path) -> Result<LoadedProfile, ProfileError> {
    let source =
        brig_files::read_to_string(path).map_err(|source| ProfileError::Read { path: path.to_path_buf(), source })?;
    let origin = path.display().to_string();
    let profile = parse(&source, &origin)?;
    if path.file_stem().and_then(|s| s.to_str()) != Some(profile.name.as_str()) {
        return Err(ProfileError::NameMismatch { origin, declared: profile.name });
    }
    // A limit `brig profile lint` refuses is never enforced: a limit of 0 or
    // below, a timeout of 0s, a tmpfs of size 0 would each mean no limit.
    let findings = lint::limit_findings(&profile, &source);
    if !findings.is_empty() {
        let message = findings.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        return Err(ProfileError::Parse {
            origin,
            message: format!("refused ({message}); `brig profile lint` shows each"),
        });
    }
    let digest = digest(&profile);
    Ok(LoadedProfile { profile, origin: Origin::File(path.to_path_buf()), source, digest })
}

/// Field-by-field differences between two profiles, as `path: a -> b` lines.
pub fn diff(a: &Profile, b: &Profile) -> Vec<String> {
    fn flatten(prefix: String, v: &serde_json::Value, out: &mut BTreeMap<String, String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    flatten(p, v, out);
                }
            }
            other => {
                out.insert(prefix, other.to_string());
            }
        }
    }
    let mut fa = BTreeMap::new();
    let mut fb = BTreeMap::new();
    flatten(String::new(), &serde_json::to_value(a).unwrap_or_default(), &mut fa);
    flatten(String::new(), &serde_json::to_value(b).unwrap_or_default(), &mut fb);
    let mut keys: Vec<&String> = fa.keys().chain(fb.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let (x, y) = (
                fa.get(k).map(String::as_str).unwrap_or("(unset)"),
                fb.get(k).map(String::as_str).unwrap_or("(unset)"),
            );
            (x != y).then(|| format!("{k}: {x} -> {y}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_builtins_are_the_toml_builtins() {
        // A launch parses the JSON build.rs made; `profile show`, `lint` and
        // people read the TOML. Both must be the same profile, field by field.
        assert_eq!(BUILTIN.len(), BUILTIN_JSON.len());
        for (name, source) in BUILTIN {
            let from_toml = parse(source, name).unwrap();
            let loaded = builtin(name).unwrap().unwrap();
            assert_eq!(loaded.profile, from_toml, "{name}");
            assert_eq!(loaded.digest, digest(&from_toml), "{name}");
            assert_eq!(loaded.source, *source, "{name}: the source shown is the TOML");
            assert!(matches!(loaded.origin, Origin::Builtin));
        }
        assert!(builtin("no-such-profile").is_none());
    }

    #[test]
    fn builtins_parse_and_lint_clean() {
        let set = ProfileSet::builtin();
        for (name, source) in BUILTIN {
            let p = set.get(name).unwrap();
            assert_eq!(&p.profile.name, name);
            let findings = lint::lint(&p.profile, source);
            assert!(findings.is_empty(), "{name}: {findings:?}");
        }
        assert!(set.get(DEFAULT_PROFILE).is_ok());
    }

    #[test]
    fn unknown_fields_are_errors_with_line() {
        let err = parse("name = \"x\"\n[rootfs]\nread_onyl = true\n", "x.toml").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("x.toml") && msg.contains("read_onyl") && msg.contains("line 3"), "{msg}");
    }

    #[test]
    fn directory_overrides_builtin() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("restricted.toml"), "name = \"restricted\"\n").unwrap();
        let set = ProfileSet::load(Some(dir.path())).unwrap();
        let p = set.get("restricted").unwrap();
        assert!(matches!(p.origin, Origin::File(_)));
        assert!(p.profile.seccomp.is_none());
        std::fs::write(dir.path().join("other.toml"), "name = \"mismatch\"\n").unwrap();
        assert!(matches!(ProfileSet::load(Some(dir.path())), Err(ProfileError::NameMismatch { .. })));
    }

    #[test]
    fn load_one_matches_the_full_set() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("custom.toml"), "name = \"custom\"\n").unwrap();
        let set = ProfileSet::load(Some(dir.path())).unwrap();
        for name in ["restricted", "standard", "permissive", "custom"] {
            let one = ProfileSet::load_one(Some(dir.path()), name).unwrap();
            assert_eq!(one.digest, set.get(name).unwrap().digest, "{name}");
        }
        assert!(matches!(ProfileSet::load_one(Some(dir.path()), "nope"), Err(ProfileError::Unknown { .. })));
        std::fs::write(dir.path().join("broken.toml"), "name = 3\n").unwrap();
        assert!(ProfileSet::load_one(Some(dir.path()), "restricted").is_err());
    }

    /// A profile file with a value that would mean "no limit" (pids 0 or
    /// below, a CPU share that rounds to no quota, a zero memory limit, a 0s
    /// timeout or grace, a tmpfs of size 0, a default timeout above the
    /// maximum, a misspelt rlimit) is refused when loaded for a launch,
    /// naming the field: it used to be enforced as written (no limit).
    #[test]
    fn a_profile_whose_limits_would_not_hold_is_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let restricted = include_str!("../builtin/restricted.toml").replace("name = \"restricted\"", "name = \"x\"");
        let path = dir.path().join("x.toml");
        std::fs::write(&path, &restricted).unwrap();
        load_file(&path).unwrap();
        for (from, to, field) in [
            ("pids = 256", "pids = -1", "cgroup.pids"),
            ("pids = 256", "pids = 0", "cgroup.pids"),
            ("cpus = 1.0", "cpus = 1e-9", "cgroup.cpus"),
            ("cpus = 1.0", "cpus = -1.0", "cgroup.cpus"),
            ("memory = \"512m\"", "memory = \"0\"", "cgroup.memory"),
            ("default = \"15m\"", "default = \"0s\"", "timeout.default"),
            ("default = \"15m\"", "default = \"2h\"", "timeout.default"),
            ("grace = \"10s\"", "grace = \"0s\"", "timeout.grace"),
            ("size = \"64m\"", "size = \"0\"", "rootfs.tmpfs.size"),
            ("nofile = 1024", "nofiles = 1024", "rlimits"),
        ] {
            assert!(restricted.contains(from), "{from}");
            std::fs::write(&path, restricted.replacen(from, to, 1)).unwrap();
            let e = load_file(&path).unwrap_err().to_string();
            assert!(e.contains(field) && e.contains("x.toml"), "{to}: {e}");
            let e = ProfileSet::load_one(Some(dir.path()), "x").unwrap_err().to_string();
            assert!(e.contains(field), "{to}: {e}");
        }
        // Lint's advice (here: seccomp without no_new_privs, which setuid
        // programs could shed) does not stop a launch.
        let advice = restricted.replacen("no_new_privs = true", "no_new_privs = false", 1);
        std::fs::write(&path, &advice).unwrap();
        let loaded = load_file(&path).unwrap();
        assert!(lint::lint(&loaded.profile, &advice).iter().any(|f| f.field == "process.no_new_privs"));
    }

    #[test]
    fn digest_tracks_meaning() {
        let a = parse("name = \"a\"\n", "a").unwrap();
        let b = parse("# comment\nname    = \"a\"\n", "a").unwrap();
        assert_eq!(digest(&a), digest(&b));
        let c = parse("name = \"a\"\n[rootfs]\nread_only = true\n", "a").unwrap();
        assert_ne!(digest(&a), digest(&c));
        assert_eq!(diff(&a, &c), vec!["rootfs.read_only: null -> true".to_string()]);
    }
}
