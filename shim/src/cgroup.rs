//! Reading a container's cgroup: resource use and OOM kills, on cgroup v1
//! (including this host's hybrid layout) and v2.

use std::path::{Path, PathBuf};

use serde::Serialize;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Resource use at the end of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Usage {
    /// CPU time in nanoseconds.
    pub cpu_ns: Option<u64>,
    /// Peak memory in bytes.
    pub memory_peak: Option<u64>,
    /// Processes alive now, and the most there ever were (if the kernel says).
    pub pids_current: Option<u64>,
    pub pids_peak: Option<u64>,
    /// OOM kills in the cgroup.
    pub oom_kills: u64,
}

/// Whether the host runs a unified (v2-only) hierarchy.
pub fn is_unified() -> bool {
    Path::new(CGROUP_ROOT).join("cgroup.controllers").exists()
}

/// Turns a systemd-style `slice:prefix:name` cgroups path into the cgroupfs
/// path systemd would have used, for hosts where systemd is not running.
pub fn systemd_to_cgroupfs(path: &str) -> Option<String> {
    let mut parts = path.splitn(3, ':');
    let (slice, prefix, name) = (parts.next()?, parts.next()?, parts.next()?);
    if path.starts_with('/') || name.is_empty() {
        return None;
    }
    let slice = if slice.is_empty() { "system.slice" } else { slice };
    let unit = if prefix.is_empty() { format!("{name}.scope") } else { format!("{prefix}-{name}.scope") };
    Some(format!("/{slice}/{unit}"))
}

/// Why a requested cgroup path may not be joined as it is: a `.` or `..`
/// component (libcgroups joins the path unchecked, so it could name any
/// cgroup of the host, or leave cgroupfs). Checked for rootless jobs too.
pub fn refuse_dot_components(cgroup_path: &Path) -> Option<String> {
    use std::path::Component;
    cgroup_path
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        .then(|| format!("`{}` has a `.` or `..` component", cgroup_path.display()))
}

/// The cgroup under which brig makes jobs' own (`/brig/<id>`).
pub const JOBS_PARENT: &str = "brig";

/// Why a spec's `linux.cgroupsPath` may not be used, if so: a `.` or `..`
/// component (libcgroups joins the path as it is, so it could name any
/// cgroup of the host), or a cgroup that already holds processes (a host
/// service's, another job's): the job would rewrite its limits, and a
/// forced `delete` would kill every process in it.
///
/// `/brig` holds the cgroups brig makes for jobs that ask for none
/// (`/brig/<id>`): a job may ask for `/brig/<its id>` and nothing else there
/// (not `/brig` itself, whose jobs would all be its children, nor another
/// job's, stopped or not yet created). Nor may a job's cgroup be below one
/// that holds processes (another job's, whose limits it would share).
pub fn refuse_requested(cgroup_path: &Path, id: &str) -> Option<String> {
    if let Some(why) = refuse_dot_components(cgroup_path) {
        return Some(why);
    }
    let rel = cgroup_path.strip_prefix("/").unwrap_or(cgroup_path);
    if rel.as_os_str().is_empty() {
        return Some("the root cgroup is the host's".to_string());
    }
    if let Ok(below) = rel.strip_prefix(JOBS_PARENT) {
        if below != Path::new(id) {
            return Some(format!(
                "`{}` is in `/{JOBS_PARENT}`, where brig makes each job's cgroup (`/{JOBS_PARENT}/<id>`): only `/{JOBS_PARENT}/{id}` is this job's",
                cgroup_path.display()
            ));
        }
    }
    let mut ancestor = rel.parent();
    while let Some(a) = ancestor.filter(|a| !a.as_os_str().is_empty()) {
        let populated = hierarchy_dirs(a)
            .ok()
            .into_iter()
            .flatten()
            .find(|d| std::fs::read_to_string(d.join("cgroup.procs")).is_ok_and(|procs| !procs.trim().is_empty()));
        if let Some(d) = populated {
            return Some(format!(
                "`{}` is below a cgroup that holds processes ({}): another job's or service's",
                cgroup_path.display(),
                d.display()
            ));
        }
        ancestor = a.parent();
    }
    let dirs = hierarchy_dirs(rel).ok()?;
    if let Some(populated) = dirs
        .iter()
        .find(|d| std::fs::read_to_string(d.join("cgroup.procs")).is_ok_and(|procs| !procs.trim().is_empty()))
    {
        return Some(format!("`{}` already holds processes ({})", cgroup_path.display(), populated.display()));
    }
    // A cgroup with child cgroups is the parent of other jobs' or services'
    // (`/brig` holds every job's): `kill --all`, `delete --force` and `pause`
    // act on the whole subtree.
    let parent = dirs
        .iter()
        .find(|d| std::fs::read_dir(d).is_ok_and(|mut entries| entries.any(|e| e.is_ok_and(|e| e.path().is_dir()))))?;
    Some(format!("`{}` has child cgroups ({}): it is not a job's own cgroup", cgroup_path.display(), parent.display()))
}

/// Whether the cgroup holds processes in any hierarchy.
pub fn holds_processes(cgroup_path: &Path) -> bool {
    let rel = cgroup_path.strip_prefix("/").unwrap_or(cgroup_path);
    hierarchy_dirs(rel)
        .ok()
        .into_iter()
        .flatten()
        .any(|d| std::fs::read_to_string(d.join("cgroup.procs")).is_ok_and(|procs| !procs.trim().is_empty()))
}

/// Thaws the cgroup (a frozen process takes no SIGKILL until thawed):
/// `freezer.state` on cgroup v1, `cgroup.freeze` on v2.
pub fn thaw(cgroup_path: &Path) {
    let rel = cgroup_path.strip_prefix("/").unwrap_or(cgroup_path);
    if is_unified() {
        let _ = std::fs::write(Path::new(CGROUP_ROOT).join(rel).join("cgroup.freeze"), "0");
    } else {
        let _ = std::fs::write(Path::new(CGROUP_ROOT).join("freezer").join(rel).join("freezer.state"), "THAWED");
    }
}

/// Sends SIGKILL to every process in the cgroup (every hierarchy, nested
/// cgroups included), a few rounds so that forks in flight are caught.
/// For a container whose state is unreadable: its processes are found by
/// its cgroup alone.
pub fn kill_all(cgroup_path: &Path) {
    let rel = cgroup_path.strip_prefix("/").unwrap_or(cgroup_path);
    let Ok(dirs) = hierarchy_dirs(rel) else { return };
    for _round in 0..20 {
        let mut any = false;
        let mut stack: Vec<PathBuf> = dirs.clone();
        while let Some(dir) = stack.pop() {
            if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()).filter(|p| *p > 0) {
                    any = true;
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                }
            }
            if let Ok(entries) = std::fs::read_dir(&dir) {
                stack.extend(entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()));
            }
        }
        if !any {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The cgroup of a job that asks for none: `/brig/<id>`, or, when a job of
/// the same id under another state root (`--root`) holds that one,
/// `/brig/<id>-<digest of the root>`, so that neither's limits, `kill --all`
/// or forced `delete` reach the other's processes.
pub fn default_path(id: &str, root: &Path) -> PathBuf {
    let plain = PathBuf::from(format!("/{JOBS_PARENT}/{id}"));
    // (One a stopped container of that id under another root still holds is
    // found by the claim, under its lock, which then takes the root-scoped
    // path: crate::lifecycle::launch, crate::cgclaim.)
    if !holds_processes(&plain) {
        return plain;
    }
    root_scoped_path(id, root)
}

/// `/brig/<id>-<digest of the root>`: the default cgroup of a job whose
/// `/brig/<id>` another state root's job of the same id holds.
pub fn root_scoped_path(id: &str, root: &Path) -> PathBuf {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(root.as_os_str().as_encoded_bytes());
    PathBuf::from(format!("/{JOBS_PARENT}/{id}-{}", hex::encode(&digest[..4])))
}

pub(crate) fn dir_for(controller: &str, cgroup_path: &Path) -> PathBuf {
    let rel = cgroup_path.strip_prefix("/").unwrap_or(cgroup_path);
    if is_unified() {
        Path::new(CGROUP_ROOT).join(rel)
    } else {
        v1_hierarchy(controller).join(rel)
    }
}

/// The cgroup v1 hierarchy of `controller`: `/sys/fs/cgroup/<controller>`,
/// or a co-mounted one (`cpu,cpuacct`) on hosts without the per-controller
/// links systemd makes.
fn v1_hierarchy(controller: &str) -> PathBuf {
    let direct = Path::new(CGROUP_ROOT).join(controller);
    if controller.is_empty() || direct.exists() {
        return direct;
    }
    std::fs::read_dir(CGROUP_ROOT)
        .ok()
        .and_then(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .find(|name| name.split(',').any(|c| c == controller))
        })
        .map_or(direct, |name| Path::new(CGROUP_ROOT).join(name))
}

/// The CPU quota (`-1`: none) and period in effect in a job's cgroup.
pub fn current_cpu_max(cgroup_path: &Path) -> Option<(i64, u64)> {
    if is_unified() {
        let text = std::fs::read_to_string(dir_for("", cgroup_path).join("cpu.max")).ok()?;
        let mut fields = text.split_whitespace();
        let quota = match fields.next()? {
            "max" => -1,
            q => q.parse().ok()?,
        };
        Some((quota, fields.next()?.parse().ok()?))
    } else {
        let dir = dir_for("cpu", cgroup_path);
        let quota = std::fs::read_to_string(dir.join("cpu.cfs_quota_us")).ok()?.trim().parse().ok()?;
        Some((quota, read_u64(&dir.join("cpu.cfs_period_us"))?))
    }
}

/// Writes a cgroup v1 CPU quota and period (`current`: the pair in the
/// cgroup, if known) in the order that keeps every intermediate pair within
/// the old or the new one's CPUs: the quota first when the period shrinks,
/// else the period first. If the second write fails the first is undone.
pub fn write_v1_cpu_pair(
    cgroup_path: &Path,
    quota: Option<i64>,
    period: Option<u64>,
    current: Option<(i64, u64)>,
) -> std::io::Result<()> {
    write_cpu_pair_in(&dir_for("cpu", cgroup_path), quota, period, current)
}

fn write_cpu_pair_in(
    dir: &Path,
    quota: Option<i64>,
    period: Option<u64>,
    current: Option<(i64, u64)>,
) -> std::io::Result<()> {
    let write_quota = |q: i64| std::fs::write(dir.join("cpu.cfs_quota_us"), q.to_string());
    let write_period = |p: u64| std::fs::write(dir.join("cpu.cfs_period_us"), p.to_string());
    match (quota, period) {
        (Some(q), Some(p)) if current.is_some_and(|(_, old)| p < old) => {
            write_quota(q)?;
            write_period(p).inspect_err(|_| {
                if let Some((old, _)) = current {
                    if let Err(e) = write_quota(old) {
                        tracing::error!("putting back the CPU quota {old} after a failed period write: {e}");
                    }
                }
            })
        }
        (Some(q), Some(p)) => {
            write_period(p)?;
            write_quota(q).inspect_err(|_| {
                if let Some((_, old)) = current {
                    if let Err(e) = write_period(old) {
                        tracing::error!("putting back the CPU period {old} after a failed quota write: {e}");
                    }
                }
            })
        }
        (Some(q), None) => write_quota(q),
        (None, Some(p)) => write_period(p),
        (None, None) => Ok(()),
    }
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn keyed(path: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Reads the usage of the cgroup at `cgroup_path` (as in the spec).
pub fn usage(cgroup_path: &Path) -> Usage {
    if is_unified() {
        let dir = dir_for("", cgroup_path);
        Usage {
            cpu_ns: keyed(&dir.join("cpu.stat"), "usage_usec").map(|u| u.saturating_mul(1000)),
            memory_peak: read_u64(&dir.join("memory.peak")),
            pids_current: read_u64(&dir.join("pids.current")),
            pids_peak: read_u64(&dir.join("pids.peak")),
            oom_kills: keyed(&dir.join("memory.events"), "oom_kill").unwrap_or(0),
        }
    } else {
        let mem = dir_for("memory", cgroup_path);
        let pids = dir_for("pids", cgroup_path);
        let cpuacct = ["cpuacct", "cpu,cpuacct"]
            .iter()
            .map(|c| dir_for(c, cgroup_path))
            .find(|d| d.join("cpuacct.usage").exists());
        Usage {
            cpu_ns: cpuacct.and_then(|d| read_u64(&d.join("cpuacct.usage"))),
            memory_peak: read_u64(&mem.join("memory.max_usage_in_bytes")),
            pids_current: read_u64(&pids.join("pids.current")),
            pids_peak: read_u64(&pids.join("pids.peak")),
            oom_kills: keyed(&mem.join("memory.oom_control"), "oom_kill").unwrap_or(0),
        }
    }
}

/// Removes the cgroup at `cgroup_path` from every hierarchy (v1 controllers,
/// named hierarchies, or the unified tree). Directories are removed deepest
/// first; a busy cgroup is retried briefly (its last task may still be exiting).
///
/// brig does this itself rather than through libcgroups' manager, which
/// re-discovers every v1 mount point through a fresh procfs per controller
/// (several milliseconds per `delete`).
pub fn remove(cgroup_path: &Path) -> std::io::Result<()> {
    let rel = cgroup_path.strip_prefix("/").unwrap_or(cgroup_path);
    if rel.as_os_str().is_empty() {
        return Ok(());
    }
    for dir in hierarchy_dirs(rel)? {
        remove_tree(&dir)?;
    }
    Ok(())
}

/// The directory of cgroup `rel` (relative to a hierarchy's root) in every
/// hierarchy: the unified one, or each v1 mount.
fn hierarchy_dirs(rel: &Path) -> std::io::Result<Vec<PathBuf>> {
    if is_unified() {
        return Ok(vec![Path::new(CGROUP_ROOT).join(rel)]);
    }
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(CGROUP_ROOT)?.flatten() {
        // Skip `cpu,cpuacct`-style symlinks: the real mount is listed too.
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            dirs.push(entry.path().join(rel));
        }
    }
    Ok(dirs)
}

fn remove_tree(dir: &Path) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries.flatten() {
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            remove_tree(&entry.path())?;
        }
    }
    let mut delay = std::time::Duration::from_millis(1);
    for _ in 0..12 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(delay);
                delay = (delay * 2).min(std::time::Duration::from_millis(200));
            }
            Err(e) => return Err(e),
        }
    }
    std::fs::remove_dir(dir)
}

/// On cgroup v2, takes the block-I/O weight out of the spec: libcgroups 0.7
/// converts it with 16-bit arithmetic (overflow above 16); brig writes
/// `io.weight` itself (`apply_fixups`).
pub fn take_v2_io_weight(linux: &mut oci_spec::runtime::Linux) -> Option<u16> {
    if !is_unified() {
        return None;
    }
    let bio = linux.resources_mut().as_mut()?.block_io_mut().as_mut()?;
    let w = bio.weight();
    bio.set_weight(None);
    w
}

/// runc's conversion of a v1 blkio weight (10..=1000) to a v2 io.weight
/// (1..=10000).
pub fn io_weight_v2(w: u16) -> u64 {
    let w = u64::from(w.clamp(10, 1000));
    1 + (w - 10) * 9999 / 990
}

/// What libcgroups 0.7 gets wrong on cgroup v2, applied after it:
/// swap equal to the memory limit means "no swap" (`memory.swap.max` 0; it
/// leaves `max`), and the block-I/O weight (see `take_v2_io_weight`).
pub fn apply_fixups(
    cgroup_path: &Path,
    r: &oci_spec::runtime::LinuxResources,
    io_weight: Option<u16>,
) -> std::io::Result<()> {
    if !is_unified() {
        return Ok(());
    }
    let dir = dir_for("", cgroup_path);
    if let Some(m) = r.memory() {
        if let (Some(limit), Some(swap)) = (m.limit(), m.swap()) {
            if limit > 0 && swap == limit {
                std::fs::write(dir.join("memory.swap.max"), "0")?;
            }
        }
    }
    if let Some(w) = io_weight {
        std::fs::write(dir.join("io.weight"), format!("default {}", io_weight_v2(w)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The cgroup v2 device program libcgroups builds for a spec's rules
    /// (run in rbpf's interpreter: this host is cgroup v1; the QEMU suite
    /// loads it for real) decides as cgroup v1 does: Docker's rules deny a
    /// host disk and `/dev/kmsg` and allow the default set; a later deny of
    /// one access refuses every request asking for it (an `O_RDWR` open
    /// passed `deny w` after `allow rwm` before libcgroups patch 6). Where
    /// hand-written rules split or overlap partially it can be stricter than
    /// runc's emulator (two allows `r` and `w` do not make `rw`), never wider.
    #[test]
    fn the_v2_device_program_decides_as_cgroup_v1() {
        use oci_spec::runtime::LinuxDeviceType::{B, C};
        let rules = |json: serde_json::Value| -> Option<Vec<oci_spec::runtime::LinuxDeviceCgroup>> {
            Some(serde_json::from_value(json).unwrap())
        };
        let allowed = |rules: &Option<Vec<_>>, typ, major, minor, access: &str| {
            let program = libcgroups::v2::devices::Devices::program(rules).unwrap();
            program.execute(typ, major, minor, access.to_string()).unwrap() == 1
        };
        let deny_all = serde_json::json!({"allow": false, "access": "rwm"});
        let docker = rules(serde_json::json!([deny_all]));
        assert!(!allowed(&docker, C, 1, 11, "w"), "/dev/kmsg");
        assert!(!allowed(&docker, B, 8, 0, "r"), "/dev/sda");
        assert!(allowed(&docker, C, 1, 3, "rw"), "/dev/null");
        assert!(allowed(&docker, C, 1, 11, "m"), "mknod is allowed by default");

        let partial = rules(serde_json::json!([
            deny_all,
            {"allow": true, "type": "b", "major": 8, "minor": 0, "access": "rwm"},
            {"allow": false, "type": "b", "major": 8, "minor": 0, "access": "w"},
        ]));
        assert!(allowed(&partial, B, 8, 0, "r"));
        assert!(!allowed(&partial, B, 8, 0, "w"));
        assert!(!allowed(&partial, B, 8, 0, "rw"), "O_RDWR past a deny of writes");

        let block_writes = rules(serde_json::json!([
            {"allow": true, "access": "rwm"},
            {"allow": false, "type": "b", "major": 8, "access": "w"},
        ]));
        assert!(allowed(&block_writes, B, 8, 1, "r"));
        assert!(!allowed(&block_writes, B, 8, 1, "rw"));
        assert!(allowed(&block_writes, C, 1, 11, "rw"));

        let kmsg = rules(serde_json::json!([
            deny_all,
            {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "w"},
        ]));
        assert!(allowed(&kmsg, C, 1, 11, "w"));
        assert!(!allowed(&kmsg, C, 1, 11, "rw"), "an allow covers only what it names");
        // A later allow wins over an earlier deny, as rules are applied in order.
        let later_allow = rules(serde_json::json!([
            deny_all,
            {"allow": false, "type": "c", "major": 1, "minor": 11, "access": "w"},
            {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "rw"},
        ]));
        assert!(allowed(&later_allow, C, 1, 11, "rw"));
    }

    /// The quota goes first when the period shrinks (100000/100000 to
    /// 10000/10000 through 10000/100000, never 100000/10000), the period
    /// first otherwise; a failed second write undoes the first.
    #[test]
    fn the_v1_cpu_pair_is_written_in_a_safe_order() {
        let read = |dir: &Path, f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        let setup = || {
            let d = tempfile::tempdir().unwrap();
            std::fs::write(d.path().join("cpu.cfs_quota_us"), "100000").unwrap();
            std::fs::write(d.path().join("cpu.cfs_period_us"), "100000").unwrap();
            d
        };
        let current = Some((100_000, 100_000));
        let d = setup();
        write_cpu_pair_in(d.path(), Some(10_000), Some(10_000), current).unwrap();
        assert_eq!(
            (read(d.path(), "cpu.cfs_quota_us"), read(d.path(), "cpu.cfs_period_us")),
            ("10000".into(), "10000".into())
        );
        // The period's write fails (here: it is a directory) after the
        // quota's: the quota is put back.
        let d = setup();
        std::fs::remove_file(d.path().join("cpu.cfs_period_us")).unwrap();
        std::fs::create_dir(d.path().join("cpu.cfs_period_us")).unwrap();
        assert!(write_cpu_pair_in(d.path(), Some(10_000), Some(10_000), current).is_err());
        assert_eq!(read(d.path(), "cpu.cfs_quota_us"), "100000");
        // A growing period goes first; if the quota's write fails, it is put back.
        let d = setup();
        std::fs::remove_file(d.path().join("cpu.cfs_quota_us")).unwrap();
        std::fs::create_dir(d.path().join("cpu.cfs_quota_us")).unwrap();
        assert!(write_cpu_pair_in(d.path(), Some(200_000), Some(200_000), current).is_err());
        assert_eq!(read(d.path(), "cpu.cfs_period_us"), "100000");
    }

    #[test]
    fn io_weights_like_runc() {
        assert_eq!(super::io_weight_v2(10), 1);
        assert_eq!(super::io_weight_v2(500), 4950);
        assert_eq!(super::io_weight_v2(1000), 10000);
    }

    use super::*;

    #[test]
    fn systemd_paths() {
        assert_eq!(systemd_to_cgroupfs("system.slice:docker:abc").as_deref(), Some("/system.slice/docker-abc.scope"));
        assert_eq!(systemd_to_cgroupfs(":cri-containerd:x").as_deref(), Some("/system.slice/cri-containerd-x.scope"));
        assert_eq!(systemd_to_cgroupfs("/docker/abc"), None);
        assert_eq!(systemd_to_cgroupfs("plain"), None);
    }
}
