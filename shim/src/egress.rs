//! Installs a job's egress ruleset in its network namespace, reads its
//! counters, and removes it (docs/egress.md).
//!
//! `create` calls [`install`] right after libcontainer built the container:
//! the init exists (its namespace is `/proc/<pid>/ns/net`, with whatever the
//! client's hooks put there — Docker's `eth0`), the job has not started. The
//! ruleset, compiled by `brig_profiles::egress::compile` into one nftables
//! JSON document, goes to the kernel in one `nft -j -f -` transaction, run
//! from a thread that entered the namespace (`setns` is per thread: brig's
//! own namespace is never touched). `delete` reads the named counters
//! ([`counters`]) into the run's outcome and removes the table
//! ([`teardown`]): namespaces the client built (Docker's sandbox, Podman's,
//! a Kubernetes pod's) outlive the container.
//!
//! A namespace that only the container's processes keep alive would be gone
//! by `delete`, with its counters. [`install`] therefore bind-mounts it on
//! `brig-netns` in the container's state directory (as `ip netns add` does
//! under /run/netns) and [`teardown`] unmounts it.

use std::fs::File;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use brig_profiles::egress::{self, EgressCounts, EgressPlan, Policy};
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};

/// brig's record of an installed ruleset, in the container's state directory.
pub const RECORD_FILE: &str = "brig-egress.json";
/// The bind mount that keeps the job's network namespace until `delete`.
pub const HOLDER_FILE: &str = "brig-netns";
/// The counters as first read after the job ended.
pub const COUNTS_FILE: &str = "brig-egress-counts.json";

/// Where Debian and others put `nft` (the callers' `PATH` is not trusted:
/// containerd's shim runs brig with a minimal environment).
const NFT_PATHS: &[&str] = &["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft", "/usr/local/sbin/nft"];

/// Why the ruleset could not be installed, read or removed.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    #[error("egress rules need nftables' `nft` (looked for {0}): install Debian's `nftables`")]
    NoNft(String),
    #[error("the job's network namespace is the host's: brig filters only a namespace of the job's own")]
    HostNamespace,
    #[error("{what} `{}`: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("entering the job's network namespace: {0}")]
    Setns(nix::Error),
    #[error("holding the job's network namespace at `{}`: {source}", path.display())]
    Hold { path: PathBuf, source: nix::Error },
    #[error("`nft` failed: {0}")]
    Nft(String),
}

fn io(what: &'static str, path: &Path, source: std::io::Error) -> EgressError {
    EgressError::Io { what, path: path.to_path_buf(), source }
}

/// What was installed (`brig-egress.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    /// The nftables table (`inet`), one per container.
    pub table: String,
    pub policy: Policy,
    /// Whether a ruleset was installed: not when nothing can leave the
    /// namespace (loopback only, no route out; see [`nothing_leaves`]).
    #[serde(default = "yes")]
    pub ruleset: bool,
    /// The host's addresses refused, as seen from the namespace at `create`.
    pub host_addresses: Vec<IpAddr>,
    pub rules: usize,
    pub set_elements: usize,
    /// Time from the start of the installation to nft's commit, µs.
    pub install_us: u64,
    /// Of which `nft` itself (from spawning it to its exit), µs.
    #[serde(default)]
    pub nft_us: u64,
    /// CPU time `nft` used (user + system, its kernel work included), µs:
    /// unlike the wall times, not inflated by other load on the machine.
    #[serde(default)]
    pub nft_cpu_us: u64,
}

fn yes() -> bool {
    true
}

impl Installed {
    pub fn load(dir: &Path) -> Option<Installed> {
        std::fs::read(dir.join(RECORD_FILE)).ok().and_then(|b| serde_json::from_slice(&b).ok())
    }
}

/// The `nft` binary.
pub fn find_nft() -> Result<PathBuf, EgressError> {
    NFT_PATHS.iter().map(PathBuf::from).find(|p| p.is_file()).ok_or_else(|| EgressError::NoNft(NFT_PATHS.join(", ")))
}

fn same_file(a: &Path, b: &Path) -> Result<bool, EgressError> {
    let ma = std::fs::metadata(a).map_err(|e| io("inspecting", a, e))?;
    let mb = std::fs::metadata(b).map_err(|e| io("inspecting", b, e))?;
    Ok(ma.dev() == mb.dev() && ma.ino() == mb.ino())
}

/// Runs `f` on a thread that entered the network namespace at `ns`; brig's
/// other threads (and so brig itself) stay where they are.
fn in_netns<T: Send>(ns: &Path, f: impl FnOnce() -> Result<T, EgressError> + Send) -> Result<T, EgressError> {
    let file = File::open(ns).map_err(|e| io("opening the network namespace", ns, e))?;
    std::thread::scope(|scope| {
        let worker = scope.spawn(move || {
            nix::sched::setns(&file, CloneFlags::CLONE_NEWNET).map_err(EgressError::Setns)?;
            f()
        });
        worker.join().unwrap_or_else(|_| Err(EgressError::Nft("the thread running nft panicked".into())))
    })
}

/// Runs `nft ARGS` (in the calling thread's network namespace) with `input`
/// on its standard input; returns its standard output.
fn nft(nft: &Path, args: &[&str], input: Option<&str>) -> Result<String, EgressError> {
    let mut child = Command::new(nft)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io("running", nft, e))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        // An early exit of nft shows in its status and stderr below.
        let _ = stdin.write_all(text.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| io("waiting for", nft, e))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let err: Vec<&str> = err.lines().map(str::trim).filter(|l| !l.is_empty()).take(4).collect();
        return Err(EgressError::Nft(format!("{} ({})", err.join(" / "), out.status)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The host's own addresses: every address of brig's network namespace (the
/// host's, where the clients run brig), which a job can reach through its
/// gateway.
pub fn host_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list that is freed below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not freed yet.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: `ifa_addr` points at a sockaddr; its family names its type.
            let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
            if family == libc::AF_INET {
                // SAFETY: an AF_INET address is a sockaddr_in.
                let sin = unsafe { &*ifa.ifa_addr.cast::<libc::sockaddr_in>() };
                out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))));
            } else if family == libc::AF_INET6 {
                // SAFETY: an AF_INET6 address is a sockaddr_in6.
                let sin6 = unsafe { &*ifa.ifa_addr.cast::<libc::sockaddr_in6>() };
                out.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out
}

/// Gateways of the routes in `/proc/PID/net/route` and `.../ipv6_route`
/// (the namespace's view of the host: Docker's bridge address, a CNI
/// gateway).
pub fn parse_gateways(route: &str, ipv6_route: &str) -> Vec<IpAddr> {
    const RTF_GATEWAY: u32 = 0x2;
    let mut out = Vec::new();
    for line in route.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(gw), Some(flags)) = (f.get(2), f.get(3)) else { continue };
        let (Ok(gw), Ok(flags)) = (u32::from_str_radix(gw, 16), u32::from_str_radix(flags, 16)) else { continue };
        if flags & RTF_GATEWAY != 0 && gw != 0 {
            // The kernel prints the network-order address as a native integer.
            out.push(IpAddr::V4(Ipv4Addr::from(gw.to_ne_bytes())));
        }
    }
    for line in ipv6_route.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some(Ok(hop)) = f.get(4).map(|h| u128::from_str_radix(h, 16)) else { continue };
        if hop != 0 {
            out.push(IpAddr::V6(Ipv6Addr::from(hop)));
        }
    }
    out
}

/// Fallback devices the kernel creates in every namespace when a tunnel
/// module is loaded: down, without addresses, and only `CAP_NET_ADMIN` could
/// configure them.
const FALLBACK_DEVICES: &[&str] =
    &["sit0", "tunl0", "ip6tnl0", "ip_vti0", "ip6_vti0", "gre0", "gretap0", "erspan0", "ip6gre0", "ip6gretap0"];

/// Whether no packet can leave the namespace: its only device is `lo` (and
/// fallback tunnels), and no IPv4 or IPv6 route uses another device. Such a
/// namespace (brig's or ctr's private one, with loopback only) needs no
/// ruleset: the job cannot add a device or a route without `CAP_NET_ADMIN`.
/// From `/proc/PID/net/{dev,route,ipv6_route}`; unreadable means "no".
pub fn nothing_leaves(dev: &str, route: &str, ipv6_route: &str) -> bool {
    let devices_ok = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .all(|d| d == "lo" || FALLBACK_DEVICES.contains(&d));
    let v4_ok = route.lines().skip(1).filter_map(|l| l.split_whitespace().next()).all(|d| d == "lo");
    let v6_ok = ipv6_route.lines().filter_map(|l| l.split_whitespace().last()).all(|d| d == "lo");
    !dev.is_empty() && devices_ok && v4_ok && v6_ok
}

fn proc_net(pid: i32, file: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/net/{file}")).ok()
}

fn gateways(pid: i32) -> Vec<IpAddr> {
    let read = |f: &str| std::fs::read_to_string(format!("/proc/{pid}/net/{f}")).unwrap_or_default();
    parse_gateways(&read("route"), &read("ipv6_route"))
}

/// CPU time (user + system) of this process's waited-for children, µs.
fn children_cpu_us() -> u64 {
    // SAFETY: an all-zero rusage is a valid value for getrusage to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) } != 0 {
        return 0;
    }
    let us =
        |t: libc::timeval| u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000 + u64::try_from(t.tv_usec).unwrap_or(0);
    us(ru.ru_utime) + us(ru.ru_stime)
}

fn hold(ns: &Path, holder: &Path) -> Result<(), EgressError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(holder)
        .map_err(|e| io("creating", holder, e))?;
    nix::mount::mount(Some(ns), holder, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(|source| {
        let _ = std::fs::remove_file(holder);
        EgressError::Hold { path: holder.to_path_buf(), source }
    })
}

/// Unmounts the namespace holder and forgets the ruleset (the rules go with
/// the namespace, or were removed by [`teardown`]). Safe to call on a
/// directory without them.
pub fn release(dir: &Path) {
    let holder = dir.join(HOLDER_FILE);
    if std::fs::symlink_metadata(&holder).is_ok() {
        if let Err(e) = nix::mount::umount2(&holder, MntFlags::MNT_DETACH) {
            // EINVAL: not (or no longer) a mount point.
            if e != nix::errno::Errno::EINVAL {
                tracing::warn!(holder = %holder.display(), "releasing the job's network namespace: {e}");
            }
        }
        if let Err(e) = std::fs::remove_file(&holder) {
            tracing::warn!(holder = %holder.display(), "removing the namespace holder: {e}");
        }
    }
    let _ = std::fs::remove_file(dir.join(RECORD_FILE));
    let _ = std::fs::remove_file(dir.join(COUNTS_FILE));
}

/// Installs `plan` in the network namespace of the container's init `pid`,
/// before the job starts. On error nothing is left (the caller removes the
/// container).
/// Records that the job's network namespace lets nothing out (loopback
/// only), so no ruleset was needed.
pub fn record_closed(dir: &Path, plan: &EgressPlan, start: Instant) -> Result<Installed, EgressError> {
    let installed = Installed {
        table: String::new(),
        policy: plan.policy,
        ruleset: false,
        host_addresses: Vec::new(),
        rules: 0,
        set_elements: 0,
        install_us: u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX),
        nft_us: 0,
        nft_cpu_us: 0,
    };
    let bytes = serde_json::to_vec_pretty(&installed).map_err(|e| EgressError::Nft(e.to_string()))?;
    crate::state::write_atomic(&dir.join(RECORD_FILE), &bytes, 0o600)
        .map_err(|e| io("writing", &dir.join(RECORD_FILE), e))?;
    Ok(installed)
}

/// Whether the job's network namespace is one the runtime makes itself
/// (a `network` entry without a path) and no hook runs before `start`
/// (`prestart`, `createRuntime`, `createContainer`): then, when the
/// container is created, its namespace holds only what the kernel puts in a
/// new one (loopback and the fallback tunnel devices, down, no routes), so
/// nothing can leave it. A hook may move an interface in (Docker's
/// `libnetwork-setkey` does), so may `linux.netDevices`, and a namespace
/// with a path is the client's.
pub fn new_and_untouched(spec: &oci_spec::runtime::Spec) -> bool {
    let Some(linux) = spec.linux().as_ref() else { return false };
    // Exactly one entry (harden refuses more; libcontainer would use the
    // last), without a path, and no host interface moved in (`netDevices`,
    // which libcontainer moves at create without a hook).
    let network: Vec<_> = linux
        .namespaces()
        .iter()
        .flatten()
        .filter(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Network)
        .collect();
    let new_network = matches!(network.as_slice(), [only] if only.path().is_none())
        && linux.net_devices().as_ref().is_none_or(|d| d.is_empty());
    let hooks = spec.hooks().as_ref();
    #[allow(deprecated)]
    let early_hooks = hooks.is_some_and(|h| {
        [h.prestart(), h.create_runtime(), h.create_container()]
            .iter()
            .any(|l| l.as_ref().is_some_and(|l| !l.is_empty()))
    });
    new_network && !early_hooks && !hooks_after_create(spec)
}

/// Whether a hook runs after `create`, while or just before the job runs
/// (`startContainer`, `poststart`): it may move an interface in after the
/// namespace was found closed, so the ruleset is installed whatever the
/// namespace holds at `create`.
pub fn hooks_after_create(spec: &oci_spec::runtime::Spec) -> bool {
    spec.hooks()
        .as_ref()
        .is_some_and(|h| [h.start_container(), h.poststart()].iter().any(|l| l.as_ref().is_some_and(|l| !l.is_empty())))
}

/// Installs `plan` in the network namespace of `pid`, or records why no
/// ruleset is needed. `untouched` is [`new_and_untouched`] of the spec:
/// such a namespace is known to be closed without reading its devices and
/// routes (it is still checked not to be the host's).
///
/// `later_hooks` ([`hooks_after_create`]): the ruleset is installed even in a
/// namespace closed now.
pub fn install(
    dir: &Path,
    id: &str,
    pid: i32,
    plan: &EgressPlan,
    untouched: bool,
    later_hooks: bool,
) -> Result<Installed, EgressError> {
    let start = Instant::now();
    let ns = PathBuf::from(format!("/proc/{pid}/ns/net"));
    if same_file(&ns, Path::new("/proc/self/ns/net"))? {
        return Err(EgressError::HostNamespace);
    }
    let closed = untouched
        || (!later_hooks
            && match (proc_net(pid, "dev"), proc_net(pid, "route"), proc_net(pid, "ipv6_route")) {
                (Some(d), Some(r), Some(r6)) => nothing_leaves(&d, &r, &r6),
                _ => false,
            });
    if closed {
        return record_closed(dir, plan, start);
    }
    let nft_bin = find_nft()?;
    let mut host = Vec::new();
    if plan.block_host {
        host.extend(host_addresses());
        host.extend(gateways(pid));
        host.retain(|a| !(a.is_loopback() || a.is_unspecified() || a.is_multicast()));
        host.sort();
        host.dedup();
    }
    let table = egress::table_name(id);
    let (doc, size) = egress::compile(plan, &table, &host);
    let json = serde_json::to_string(&doc).map_err(|e| EgressError::Nft(format!("encoding the ruleset: {e}")))?;

    let holder = dir.join(HOLDER_FILE);
    hold(&ns, &holder)?;
    let installed = in_netns(&holder, || {
        let (t, cpu) = (Instant::now(), children_cpu_us());
        nft(&nft_bin, &["-j", "-f", "-"], Some(&json)).map(|_| (t.elapsed(), children_cpu_us().saturating_sub(cpu)))
    })
    .and_then(|(nft_time, nft_cpu_us)| {
        let installed = Installed {
            table,
            policy: plan.policy,
            ruleset: true,
            host_addresses: host,
            rules: size.rules,
            set_elements: size.set_elements,
            install_us: u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX),
            nft_us: u64::try_from(nft_time.as_micros()).unwrap_or(u64::MAX),
            nft_cpu_us,
        };
        let bytes = serde_json::to_vec_pretty(&installed).map_err(|e| EgressError::Nft(e.to_string()))?;
        crate::state::write_atomic(&dir.join(RECORD_FILE), &bytes, 0o600)
            .map_err(|e| io("writing", &dir.join(RECORD_FILE), e))?;
        Ok(installed)
    });
    if installed.is_err() {
        release(dir);
    }
    installed
}

/// At `start`, for a namespace that `create` found closed (no ruleset): a
/// client may wire it between `create` and `start` (Podman with a user
/// namespace, CNI: they configure the network of the runtime's namespace
/// after `create`). If anything can leave it now, the ruleset is installed
/// before the job runs. `Ok(None)`: it is still closed (or was filtered
/// already).
pub fn recheck_at_start(dir: &Path, id: &str, pid: i32, plan: &EgressPlan) -> Result<Option<Installed>, EgressError> {
    match Installed::load(dir) {
        Some(i) if !i.ruleset => {}
        _ => return Ok(None),
    }
    match (proc_net(pid, "dev"), proc_net(pid, "route"), proc_net(pid, "ipv6_route")) {
        (Some(d), Some(r), Some(r6)) if nothing_leaves(&d, &r, &r6) => Ok(None),
        _ => install(dir, id, pid, plan, false, true).map(Some),
    }
}

/// The counters of the container's ruleset, if it has one and its namespace
/// is still held. Called once the job has ended (the outcome): the first
/// reading is kept in `brig-egress-counts.json`, so `run`, `state` and
/// `delete` do not each spawn `nft`.
pub fn counters(dir: &Path) -> Option<EgressCounts> {
    let installed = Installed::load(dir).filter(|i| i.ruleset)?;
    let cache = dir.join(COUNTS_FILE);
    if let Some(c) = std::fs::read(&cache).ok().and_then(|b| serde_json::from_slice(&b).ok()) {
        return Some(c);
    }
    let holder = dir.join(HOLDER_FILE);
    let read = find_nft()
        .and_then(|bin| in_netns(&holder, || nft(&bin, &["-j", "list", "table", "inet", &installed.table], None)));
    match read.map(|out| egress::parse_counters(&out)) {
        Ok(Ok(c)) => {
            if let Ok(bytes) = serde_json::to_vec(&c) {
                let _ = crate::state::write_atomic(&cache, &bytes, 0o600);
            }
            Some(c)
        }
        Ok(Err(e)) => {
            tracing::warn!(table = installed.table.as_str(), "reading the egress counters: {e}");
            None
        }
        Err(e) => {
            tracing::warn!(table = installed.table.as_str(), "reading the egress counters: {e}");
            None
        }
    }
}

/// Removes the container's table from its namespace (which may be the
/// client's and outlive the container) and releases the namespace.
pub fn teardown(dir: &Path) {
    if let Some(installed) = Installed::load(dir).filter(|i| i.ruleset) {
        let holder = dir.join(HOLDER_FILE);
        let doc = egress::delete_table(&installed.table);
        let removed = serde_json::to_string(&doc).map_err(|e| EgressError::Nft(e.to_string())).and_then(|json| {
            find_nft().and_then(|bin| in_netns(&holder, || nft(&bin, &["-j", "-f", "-"], Some(&json))))
        });
        if let Err(e) = removed {
            tracing::warn!(table = installed.table.as_str(), "removing the egress rules: {e}");
        }
    }
    release(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_new_namespace_without_hooks_is_known_closed() {
        let spec = |namespaces: serde_json::Value, hooks: serde_json::Value| -> oci_spec::runtime::Spec {
            serde_json::from_value(serde_json::json!({
                "ociVersion": "1.0.2",
                "root": { "path": "rootfs" },
                "linux": { "namespaces": namespaces },
                "hooks": hooks,
            }))
            .unwrap()
        };
        let new_net = serde_json::json!([{ "type": "pid" }, { "type": "network" }]);
        let hook = serde_json::json!([{ "path": "/usr/bin/true" }]);
        assert!(new_and_untouched(&spec(new_net.clone(), serde_json::json!({}))));
        // A hook that only runs after the job is gone cannot open it.
        assert!(new_and_untouched(&spec(new_net.clone(), serde_json::json!({ "poststop": hook }))));
        // Any other may move an interface in, before the ruleset or after
        // it would have been installed (`startContainer`, `poststart`).
        for early in ["prestart", "createRuntime", "createContainer", "startContainer", "poststart"] {
            let hooks = serde_json::json!({ early: hook });
            assert!(!new_and_untouched(&spec(new_net.clone(), hooks)), "{early}");
        }
        // The client's namespace, or the host's.
        let joined = serde_json::json!([{ "type": "network", "path": "/run/netns/x" }]);
        assert!(!new_and_untouched(&spec(joined, serde_json::json!({}))));
        // Two entries: libcontainer would join the last one's path.
        let twice = serde_json::json!([{ "type": "network" }, { "type": "network", "path": "/run/netns/x" }]);
        assert!(!new_and_untouched(&spec(twice, serde_json::json!({}))));
        // A host interface moved in at create.
        let mut moved = spec(new_net.clone(), serde_json::json!({}));
        let devices: std::collections::HashMap<String, oci_spec::runtime::LinuxNetDevice> =
            serde_json::from_value(serde_json::json!({ "eth1": {} })).unwrap();
        if let Some(linux) = moved.linux_mut() {
            linux.set_net_devices(Some(devices));
        }
        assert!(!new_and_untouched(&moved));
        assert!(!new_and_untouched(&spec(serde_json::json!([{ "type": "pid" }]), serde_json::json!({}))));
    }

    #[test]
    fn only_loopback_needs_no_ruleset() {
        let dev = |names: &[&str]| {
            let mut t = "Inter-|   Receive\n face |bytes    packets\n".to_string();
            for n in names {
                t.push_str(&format!("  {n}:       0       0    0    0    0     0          0         0\n"));
            }
            t
        };
        let route = "Iface\tDestination\tGateway \tFlags\n";
        let lo6 = "00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo\n";
        assert!(nothing_leaves(&dev(&["lo"]), route, lo6));
        assert!(nothing_leaves(&dev(&["lo", "sit0", "ip6tnl0"]), route, ""));
        // Docker's bridge: an eth0, even before any route.
        assert!(!nothing_leaves(&dev(&["lo", "eth0"]), route, lo6));
        let v4 = format!("{route}eth0\t00000000\t010011AC\t0003\n");
        assert!(!nothing_leaves(&dev(&["lo"]), &v4, lo6));
        let v6 = format!("{lo6}fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     sit0\n");
        assert!(!nothing_leaves(&dev(&["lo", "sit0"]), route, &v6));
        assert!(!nothing_leaves("", route, lo6), "unreadable: filter");
    }

    #[test]
    fn gateways_from_proc_routes() {
        // 198.18.77.1 as the kernel prints it on a little-endian machine.
        let gw = u32::from_ne_bytes([198, 18, 77, 1]);
        let route = format!(
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
             eth0\t00000000\t{gw:08X}\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
             eth0\t004D12C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
        );
        let v6 = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 eth0\n\
                  fd420000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001 eth0\n";
        let got = parse_gateways(&route, v6);
        assert_eq!(got, vec!["198.18.77.1".parse::<IpAddr>().unwrap(), "fe80::1".parse().unwrap()]);
        assert!(parse_gateways("", "").is_empty());
        assert!(parse_gateways("header\ngarbage line\n", "short\n").is_empty());
    }
}
