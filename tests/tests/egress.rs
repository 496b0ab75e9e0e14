//! Egress rules (issue 6) with real containers: the job joins a network
//! namespace the test built (as Podman and Kubernetes hand one to the
//! runtime), wired by a veth pair to a second namespace, the test host, which
//! holds servers at several addresses. Nothing here touches the host's own
//! network: both namespaces and the veth pair live only inside them, and are
//! removed when the test ends, whatever happens.
//!
//! Test network (addresses from 198.18.0.0/15, the benchmarking range):
//!
//! ```text
//!   job netns  eth0 198.18.0.2/24  fd42:e9::2/64   default via .1 / ::1
//!   host netns eth0 198.18.0.1/24  fd42:e9::1/64   (the job's gateway)
//!              lo   198.19.0.10 .20 .53 .54, 169.254.169.254, fd42:e9:1::10 ::20
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use brig_tests::{unique_id, Brig, Bundle};
use serde_json::{json, Value};

const RESTRICTED: &str = include_str!("../../profiles/builtin/restricted.toml");
const STANDARD: &str = include_str!("../../profiles/builtin/standard.toml");
const PERMISSIVE: &str = include_str!("../../profiles/builtin/permissive.toml");

// ------------------------------------------------------------- network

fn sh(cmd: &[&str]) -> std::process::Output {
    Command::new(cmd[0]).args(&cmd[1..]).output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

fn must(cmd: &[&str]) {
    let out = sh(cmd);
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

static NET_COUNTER: AtomicUsize = AtomicUsize::new(0);
const NETNS_PREFIX: &str = "brig-egress-";

/// Removes test namespaces of test processes that are gone (a killed run).
fn sweep_stale_namespaces() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        for e in std::fs::read_dir("/run/netns").into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some(rest) = name.strip_prefix(NETNS_PREFIX) else { continue };
            let pid: Option<i32> = rest.split('-').next().and_then(|p| p.parse().ok());
            if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                let _ = sh(&["ip", "netns", "del", &name]);
            }
        }
    });
}

/// A job namespace and a test-host namespace joined by a veth pair; both
/// are deleted (with the veth pair) on drop.
struct TestNet {
    job: String,
    host: String,
}

impl TestNet {
    fn new() -> TestNet {
        sweep_stale_namespaces();
        let n = NET_COUNTER.fetch_add(1, Ordering::SeqCst);
        let base = format!("{NETNS_PREFIX}{}-{n}", std::process::id());
        let net = TestNet { job: format!("{base}-job"), host: format!("{base}-host") };
        must(&["ip", "netns", "add", &net.job]);
        must(&["ip", "netns", "add", &net.host]);
        // Created inside the namespaces: the host's namespace never sees them.
        must(&[
            "ip", "-n", &net.job, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", &net.host,
        ]);
        for (ns, v4, v6) in
            [(&net.job, "198.18.0.2/24", "fd42:e9::2/64"), (&net.host, "198.18.0.1/24", "fd42:e9::1/64")]
        {
            must(&["ip", "-n", ns, "addr", "add", v4, "dev", "eth0"]);
            must(&["ip", "-n", ns, "addr", "add", v6, "dev", "eth0", "nodad"]);
            must(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
            must(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        must(&["ip", "-n", &net.job, "route", "add", "default", "via", "198.18.0.1"]);
        must(&["ip", "-n", &net.job, "-6", "route", "add", "default", "via", "fd42:e9::1"]);
        for a in ["198.19.0.10/32", "198.19.0.20/32", "198.19.0.53/32", "198.19.0.54/32", "169.254.169.254/32"] {
            must(&["ip", "-n", &net.host, "addr", "add", a, "dev", "lo"]);
        }
        for a in ["fd42:e9:1::10/128", "fd42:e9:1::20/128"] {
            must(&["ip", "-n", &net.host, "addr", "add", a, "dev", "lo", "nodad"]);
        }
        net
    }

    fn job_path(&self) -> String {
        format!("/run/netns/{}", self.job)
    }

    /// The brig tables in the job's namespace.
    fn brig_tables(&self) -> Vec<String> {
        let out = sh(&["ip", "netns", "exec", &self.job, "nft", "list", "tables"]);
        String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains("brig_")).map(str::to_string).collect()
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the veth pair, and so both.
        let _ = sh(&["ip", "netns", "del", &self.job]);
        let _ = sh(&["ip", "netns", "del", &self.host]);
    }
}

// ------------------------------------------------------------- servers

/// TCP servers answering one HTTP-ish line, and DNS servers answering every
/// A query with 198.19.0.99, all bound inside the test host's namespace by a
/// thread that entered it. They stop on drop, and after 120 s in any case.
struct Servers {
    stop: Arc<AtomicBool>,
    hits: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

type Listeners = Vec<(String, TcpListener)>;
type Sockets = Vec<(String, UdpSocket)>;

/// A DNS answer to `query`: the question echoed, one A record for A queries.
fn dns_answer(query: &[u8]) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    let mut i = 12;
    while i < query.len() && query[i] != 0 {
        i += usize::from(query[i]) + 1;
    }
    let end = i + 5; // the zero label, QTYPE, QCLASS
    if end > query.len() {
        return None;
    }
    let qtype = u16::from_be_bytes([query[i + 1], query[i + 2]]);
    let a = qtype == 1;
    let mut r = Vec::new();
    r.extend_from_slice(&query[0..2]);
    r.extend_from_slice(&[0x81, 0x80, 0, 1, 0, u8::from(a), 0, 0, 0, 0]);
    r.extend_from_slice(&query[12..end]);
    if a {
        r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 19, 0, 99]);
    }
    Some(r)
}

impl Servers {
    fn start(net: &TestNet, tcp: &[&str], udp: &[&str]) -> Servers {
        let stop = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let ns = format!("/run/netns/{}", net.host);
        let tcp: Vec<String> = tcp.iter().map(|s| s.to_string()).collect();
        let udp: Vec<String> = udp.iter().map(|s| s.to_string()).collect();
        let (stop2, hits2) = (stop.clone(), hits.clone());
        let thread = std::thread::spawn(move || {
            let setup = || -> Result<(Listeners, Sockets), String> {
                let f = std::fs::File::open(&ns).map_err(|e| format!("{ns}: {e}"))?;
                nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns: {e}"))?;
                let mut listeners = Vec::new();
                for a in &tcp {
                    let l = TcpListener::bind(a).map_err(|e| format!("bind {a}: {e}"))?;
                    l.set_nonblocking(true).map_err(|e| e.to_string())?;
                    listeners.push((a.clone(), l));
                }
                let mut sockets = Vec::new();
                for a in &udp {
                    let u = UdpSocket::bind(a).map_err(|e| format!("bind {a}: {e}"))?;
                    u.set_nonblocking(true).map_err(|e| e.to_string())?;
                    sockets.push((a.clone(), u));
                }
                Ok((listeners, sockets))
            };
            let (listeners, sockets) = match setup() {
                Ok(x) => {
                    let _ = ready_tx.send(Ok(()));
                    x
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut buf = [0u8; 1500];
            while !stop2.load(Ordering::SeqCst) && Instant::now() < deadline {
                for (a, l) in &listeners {
                    if let Ok((mut s, _)) = l.accept() {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                        let _ = s.read(&mut buf);
                        let _ = s.write_all(format!("HTTP/1.0 200 OK\r\n\r\nhello from {a}\n").as_bytes());
                        hits2.lock().unwrap().push(format!("tcp {a}"));
                    }
                }
                for (a, u) in &sockets {
                    if let Ok((n, peer)) = u.recv_from(&mut buf) {
                        if let Some(reply) = dns_answer(&buf[..n]) {
                            let _ = u.send_to(&reply, peer);
                        }
                        hits2.lock().unwrap().push(format!("udp {a}"));
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("test servers: {e}"),
            Err(e) => panic!("test servers did not start: {e}"),
        }
        Servers { stop, hits, thread: Some(thread) }
    }

    fn saw(&self, what: &str) -> bool {
        self.hits.lock().unwrap().iter().any(|h| h == what)
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ------------------------------------------------------------- rootfs

fn copy_with_libs(bin: &Path, root: &Path, dest: &str) {
    let target = root.join(dest.trim_start_matches('/'));
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::copy(bin, &target).unwrap_or_else(|e| panic!("copying {}: {e}", bin.display()));
    let out = sh(&["ldd", bin.to_str().unwrap()]);
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(lib) = line.split_whitespace().find(|w| w.starts_with('/')).map(PathBuf::from) {
            let t = root.join(lib.strip_prefix("/").unwrap());
            std::fs::create_dir_all(t.parent().unwrap()).unwrap();
            if !t.exists() {
                std::fs::copy(&lib, &t).unwrap();
            }
        }
    }
}

/// The shared busybox rootfs plus the host's `nft` and `iptables` (with
/// their libraries), so that the job can try to change its rules.
fn egress_rootfs() -> PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let base = std::env::temp_dir().join("brig-egress-rootfs");
        std::fs::create_dir_all(&base).unwrap();
        for e in std::fs::read_dir(&base).unwrap().flatten() {
            let pid: Option<i32> = e.file_name().to_string_lossy().parse().ok();
            if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let root = base.join(std::process::id().to_string());
        let _ = std::fs::remove_dir_all(&root);
        must(&["cp", "-a", brig_tests::rootfs().to_str().unwrap(), root.to_str().unwrap()]);
        let nft = Path::new("/usr/sbin/nft");
        assert!(nft.exists(), "/usr/sbin/nft is missing: install Debian's nftables (scripts/deps.sh does)");
        copy_with_libs(nft, &root, "/usr/sbin/nft");
        let iptables = std::fs::canonicalize("/usr/sbin/iptables")
            .expect("/usr/sbin/iptables is missing: install Debian's iptables");
        copy_with_libs(&iptables, &root, "/usr/sbin/xtables-nft-multi");
        std::os::unix::fs::symlink("xtables-nft-multi", root.join("usr/sbin/iptables")).unwrap();
        root
    })
    .clone()
}

// ------------------------------------------------------------- brig

/// A profile derived from a built-in one: renamed, its `[network]` section
/// replaced, and `edits` (from, to) applied to its text.
///
/// Its `[user_namespace]` section is dropped (the spec's namespaces are
/// honoured): a job in a user namespace of its own cannot join a network
/// namespace owned by the host's user namespace, as the test's are
/// (libcontainer 0.7 joins namespaces by path after unsharing the user
/// namespace: EPERM). The built-in `restricted`, per-job user namespace
/// included, is exercised in a namespace of the job's own below.
fn derived(base: &str, name: &str, network: &str, edits: &[(&str, &str)]) -> String {
    let mut text = String::new();
    let mut skip = false;
    for line in base.lines() {
        if line.starts_with('[') {
            skip = matches!(line.trim(), "[network]" | "[user_namespace]");
        }
        if skip {
            continue;
        }
        if line.starts_with("name = ") {
            text.push_str(&format!("name = \"{name}\"\n"));
        } else {
            text.push_str(line);
            text.push('\n');
        }
    }
    for (from, to) in edits {
        assert!(text.contains(from), "`{from}` is not in the base profile");
        text = text.replace(from, to);
    }
    text.push_str(&format!("\n[network]\n{network}\n"));
    text
}

fn brig_with(profiles: &[(&str, String)]) -> Brig {
    let brig = Brig::new("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"restricted\"\n");
    let dir = brig.dir.path().join("profiles");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in profiles {
        std::fs::write(dir.join(format!("{name}.toml")), text).unwrap();
    }
    brig
}

/// A job running `script` under `profile`, in the test net's job namespace
/// (`net = None`: a namespace of its own).
fn job(profile: &str, net: Option<&TestNet>, script: &str) -> Bundle {
    let mut b = Bundle::new(&["sh", "-c", script]);
    b.config["root"]["path"] = json!(egress_rootfs());
    if let Some(net) = net {
        let ns = b.config["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "network");
        ns.push(json!({"type": "network", "path": net.job_path()}));
    }
    b.write();
    b.annotate("dev.brig.profile", profile);
    b
}

/// `NAME=VALUE` lines of the job's output.
fn results(out: &str) -> BTreeMap<String, String> {
    out.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect()
}

fn expect(out: &str, want: &[(&str, &str)]) {
    let got = results(out);
    let wrong: Vec<String> = want
        .iter()
        .filter(|(k, v)| got.get(*k).map(String::as_str) != Some(*v))
        .map(|(k, v)| format!("{k}: want `{v}`, got `{}`", got.get(*k).map(String::as_str).unwrap_or("(missing)")))
        .collect();
    assert!(wrong.is_empty(), "{}\njob output:\n{out}", wrong.join("\n"));
}

/// Shell functions the jobs use: `get ADDR PORT NAME` prints NAME=ok when
/// the server answered, NAME=refused otherwise (connect bounded to 3 s);
/// `dns SERVER NAME` likewise for a DNS query (bounded to 5 s).
const FNS: &str = r#"
get() { if printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 "$1" "$2" 2>/dev/null | grep -q "hello from"; then echo "$3=ok"; else echo "$3=refused"; fi; }
dns() { if timeout 5 nslookup job.test "$1" 2>/dev/null | grep -q 198.19.0.99; then echo "$2=ok"; else echo "$2=refused"; fi; }
"#;

fn script(body: &str) -> String {
    format!("{FNS}\n{body}")
}

/// `run --keep`, then the outcome's egress counters from `state`.
fn run_keep(brig: &Brig, bundle: &Bundle, id: &str) -> (i32, String, String, Value) {
    let (code, out, err) = brig.cmd_files(&["run", "--keep", "--bundle", bundle.path().to_str().unwrap(), id]);
    let egress = if code == 0 || brig.root.join(id).exists() {
        brig.state(id)["brig"]["outcome"]["egress"].clone()
    } else {
        Value::Null
    };
    (code, out, err, egress)
}

/// The container's egress record: policy `loopback_only`, with or without
/// a ruleset.
fn assert_loopback_only(brig: &Brig, id: &str, ruleset: bool) {
    let record: Value =
        serde_json::from_slice(&std::fs::read(brig.root.join(id).join("brig-egress.json")).unwrap()).unwrap();
    assert_eq!(
        (record["policy"].as_str(), record["ruleset"].as_bool()),
        (Some("loopback_only"), Some(ruleset)),
        "{record}"
    );
}

/// No namespace holder of this brig's containers is left mounted.
fn assert_no_holders(brig: &Brig) {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = brig.root.to_str().unwrap();
    let left: Vec<&str> = mounts.lines().filter(|l| l.contains(root)).collect();
    assert!(left.is_empty(), "namespace holders left mounted: {left:?}");
}

fn packets(egress: &Value, counter: &str) -> u64 {
    egress[counter]["packets"].as_u64().unwrap_or(0)
}

const ALLOW_NET: &str = r#"mode = "allow"
allow = ["198.19.0.10/32:80/tcp", "fd42:e9:1::10/128:80/tcp"]
dns = "198.19.0.53""#;

// ------------------------------------------------------------- tests

#[test]
fn allowlisted_destinations_only() {
    let net = TestNet::new();
    let servers = Servers::start(
        &net,
        &["198.19.0.10:80", "198.19.0.10:81", "198.19.0.20:80", "[fd42:e9:1::10]:80", "[fd42:e9:1::20]:80"],
        &["198.19.0.53:53", "198.19.0.54:53"],
    );
    let brig = brig_with(&[("egress-allow", derived(RESTRICTED, "egress-allow", ALLOW_NET, &[]))]);
    let b = job(
        "egress-allow",
        Some(&net),
        &script(
            "get 198.19.0.10 80 allowed\nget 198.19.0.20 80 other_address\nget 198.19.0.10 81 other_port\n\
             get fd42:e9:1::10 80 allowed6\nget fd42:e9:1::20 80 other6\n\
             dns 198.19.0.53 resolver\ndns 198.19.0.54 other_resolver\n\
             echo raw=$(/bin/brig-probe raw-socket)\necho packet=$(/bin/brig-probe packet-socket)",
        ),
    );
    let id = unique_id("egress");
    let (code, out, err, counts) = run_keep(&brig, &b, &id);
    assert_eq!(code, 0, "{err}{out}");
    expect(
        &out,
        &[
            ("allowed", "ok"),
            ("other_address", "refused"),
            ("other_port", "refused"),
            ("allowed6", "ok"),
            ("other6", "refused"),
            ("resolver", "ok"),
            ("other_resolver", "refused"),
            ("raw", "errno=EPERM"),
            ("packet", "errno=EPERM"),
        ],
    );
    // Refused in the job's namespace: nothing reached the other servers.
    assert!(servers.saw("tcp 198.19.0.10:80") && servers.saw("udp 198.19.0.53:53"));
    for never in ["tcp 198.19.0.20:80", "tcp 198.19.0.10:81", "tcp [fd42:e9:1::20]:80", "udp 198.19.0.54:53"] {
        assert!(!servers.saw(never), "{never} was reached");
    }
    // The refusals were counted, and read into the run's outcome.
    assert!(packets(&counts, "refused") >= 3, "counters: {counts}");
    assert_eq!(net.brig_tables().len(), 1, "the ruleset lives in the job's namespace while the container exists");
    brig.ok(&["delete", &id]);
    assert!(net.brig_tables().is_empty(), "the ruleset is removed with the container: {:?}", net.brig_tables());
    assert_no_holders(&brig);
}

#[test]
fn metadata_and_host_addresses_need_a_rule_naming_them() {
    let net = TestNet::new();
    let _servers =
        Servers::start(&net, &["198.19.0.20:80", "169.254.169.254:80", "198.18.0.1:80", "[fd42:e9::1]:80"], &[]);
    let broad = r#"mode = "allow"
allow = ["0.0.0.0/0:80/tcp", "::/0:80/tcp"]"#;
    let named = r#"mode = "allow"
allow = ["0.0.0.0/0:80/tcp", "169.254.169.254/32:80/tcp"]"#;
    let brig = brig_with(&[
        ("egress-broad", derived(RESTRICTED, "egress-broad", broad, &[])),
        ("egress-named", derived(RESTRICTED, "egress-named", named, &[])),
    ]);
    let body = script(
        "get 198.19.0.20 80 broad\nget 169.254.169.254 80 metadata\nget 198.18.0.1 80 gateway\nget fd42:e9::1 80 gateway6",
    );
    let id = unique_id("egress");
    let (code, out, err, counts) = run_keep(&brig, &job("egress-broad", Some(&net), &body), &id);
    assert_eq!(code, 0, "{err}{out}");
    expect(&out, &[("broad", "ok"), ("metadata", "refused"), ("gateway", "refused"), ("gateway6", "refused")]);
    assert!(packets(&counts, "blocked") >= 3, "counters: {counts}");
    brig.ok(&["delete", &id]);

    let (code, out, err) = brig.run(&job("egress-named", Some(&net), &body), &unique_id("egress"));
    assert_eq!(code, 0, "{err}{out}");
    expect(&out, &[("broad", "ok"), ("metadata", "ok"), ("gateway", "refused")]);
}

#[test]
fn the_job_cannot_change_its_rules() {
    let net = TestNet::new();
    let servers = Servers::start(&net, &["198.19.0.10:80", "198.19.0.20:80"], &[]);
    let network = r#"mode = "allow"
allow = ["198.19.0.10/32:80/tcp"]"#;
    // As root in the job: `restricted` (no capabilities), `standard` (ten,
    // CAP_NET_ADMIN never among them) and `permissive` (runc's template:
    // AUDIT_WRITE, KILL, NET_BIND_SERVICE; no brig seccomp filter, so the
    // tools get their netlink sockets and the kernel's capability check is
    // what refuses them; under the other two, seccomp already refuses the
    // raw netlink sockets nft, iptables and ip open).
    let brig = brig_with(&[
        ("egress-std", derived(STANDARD, "egress-std", network, &[])),
        ("egress-rst", derived(RESTRICTED, "egress-rst", network, &[])),
        ("egress-prm", derived(PERMISSIVE, "egress-prm", network, &[])),
    ]);
    let body = script(
        r#"nft --version >/dev/null 2>&1; echo "nft_runs=$?"
iptables --version >/dev/null 2>&1; echo "iptables_runs=$?"
echo "uid=$(id -u)"
echo "capeff=$(grep CapEff /proc/self/status | cut -f2)"
echo "nft_error=$(nft flush ruleset 2>&1 | grep -o 'Operation not permitted' | head -1)"
nft flush ruleset >/dev/null 2>&1; echo "nft_flush=$?"
nft add table inet open >/dev/null 2>&1; echo "nft_add=$?"
ip route del default >/dev/null 2>&1; echo "route_del=$?"
ip route add 198.19.0.20/32 via 198.18.0.1 >/dev/null 2>&1; echo "route_add=$?"
ip link set eth0 down >/dev/null 2>&1; echo "link_down=$?"
iptables -F >/dev/null 2>&1; echo "iptables_flush=$?"
iptables -P OUTPUT ACCEPT >/dev/null 2>&1; echo "iptables_policy=$?"
get 198.19.0.10 80 allowed
get 198.19.0.20 80 other"#,
    );
    for profile in ["egress-std", "egress-rst", "egress-prm"] {
        let (code, out, err) = brig.run(&job(profile, Some(&net), &body), &unique_id("egress"));
        assert_eq!(code, 0, "{profile}: {err}{out}");
        let r = results(&out);
        assert_eq!(r.get("uid").map(String::as_str), Some("0"), "{profile}: {out}");
        if profile == "egress-prm" {
            assert_eq!(r.get("nft_runs").map(String::as_str), Some("0"), "{profile}: nft does not run: {out}");
            assert_eq!(
                r.get("iptables_runs").map(String::as_str),
                Some("0"),
                "{profile}: iptables does not run: {out}"
            );
        }
        let capeff = u64::from_str_radix(r.get("capeff").map(String::as_str).unwrap_or("x"), 16).unwrap();
        assert_eq!(capeff & (1 << 12), 0, "{profile}: the job has CAP_NET_ADMIN: {out}");
        assert_eq!(r.get("nft_error").map(String::as_str), Some("Operation not permitted"), "{profile}: {out}");
        for k in ["nft_flush", "nft_add", "route_del", "route_add", "link_down", "iptables_flush", "iptables_policy"] {
            let v = r.get(k).map(String::as_str).unwrap_or("(missing)");
            assert!(v != "0" && v != "(missing)", "{profile}: `{k}` succeeded from inside the job:\n{out}");
        }
        expect(&out, &[("allowed", "ok"), ("other", "refused")]);
    }
    assert!(!servers.saw("tcp 198.19.0.20:80"));
    assert!(net.brig_tables().is_empty());
    assert_no_holders(&brig);
}

#[test]
fn none_leaves_only_loopback() {
    let net = TestNet::new();
    let servers = Servers::start(&net, &["198.19.0.10:8080"], &["198.19.0.53:53"]);
    // restricted (mode none) with Landlock letting the job use TCP 8080, so
    // that what stops it below is the ruleset, not Landlock.
    let brig = brig_with(&[(
        "egress-none",
        derived(
            RESTRICTED,
            "egress-none",
            "mode = \"none\"",
            &[("tcp_connect = []", "tcp_connect = [8080]"), ("tcp_bind = []", "tcp_bind = [8080]")],
        ),
    )]);
    let body = script(
        r#"grep -q eth0: /proc/net/dev && echo "eth0=present"
nc -l -p 8080 -e echo loop-ok & sleep 0.3
if nc -w 2 127.0.0.1 8080 </dev/null | grep -q loop-ok; then echo "loopback=ok"; else echo "loopback=refused"; fi
get 198.19.0.10 8080 outside
dns 198.19.0.53 resolver"#,
    );
    let id = unique_id("egress");
    let (code, out, err, counts) = run_keep(&brig, &job("egress-none", Some(&net), &body), &id);
    assert_eq!(code, 0, "{err}{out}");
    expect(&out, &[("eth0", "present"), ("loopback", "ok"), ("outside", "refused"), ("resolver", "refused")]);
    assert!(!servers.saw("tcp 198.19.0.10:8080") && !servers.saw("udp 198.19.0.53:53"));
    assert!(packets(&counts, "refused") >= 2, "counters: {counts}");
    brig.ok(&["delete", &id]);

    // The built-in `restricted` in a namespace of the job's own (as `brig
    // run` and `ctr run` make it): loopback only, no route out, so nothing
    // can leave and brig installs no ruleset (it records why); nothing is
    // left once the container is gone.
    let brig = brig_with(&[]);
    let b = job("restricted", None, "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ' '; echo");
    let id = unique_id("egress");
    let (code, out, err, counts) = run_keep(&brig, &b, &id);
    assert_eq!(code, 0, "{err}{out}");
    assert_eq!(out.trim(), "lo", "{out}");
    assert_loopback_only(&brig, &id, false);
    assert!(counts.is_null(), "{counts}");
    brig.ok(&["delete", &id]);
    assert_no_holders(&brig);
}

#[test]
fn requests_narrow_the_profile_and_are_refused_outside_it() {
    let net = TestNet::new();
    let _servers = Servers::start(&net, &["198.19.0.10:80", "198.19.0.20:80"], &[]);
    let subnet = r#"mode = "allow"
allow = ["198.19.0.0/24:80/tcp", "0.0.0.0/0:8080/tcp"]"#;
    let brig = brig_with(&[("egress-subnet", derived(RESTRICTED, "egress-subnet", subnet, &[]))]);
    let body = script("get 198.19.0.10 80 asked\nget 198.19.0.20 80 not_asked");

    // Without a request the job gets the profile's allowlist.
    let (code, out, err) = brig.run(&job("egress-subnet", Some(&net), &body), &unique_id("egress"));
    assert_eq!(code, 0, "{err}{out}");
    expect(&out, &[("asked", "ok"), ("not_asked", "ok")]);

    // A request inside it narrows it.
    let mut b = job("egress-subnet", Some(&net), &body);
    b.annotate("dev.brig.egress", "198.19.0.10/32:80/tcp");
    let (code, out, err) = brig.run(&b, &unique_id("egress"));
    assert_eq!(code, 0, "{err}{out}");
    expect(&out, &[("asked", "ok"), ("not_asked", "refused")]);

    // A request outside it is refused at create, naming the rule.
    for (ask, named) in [
        ("198.19.0.10/32:80/tcp,198.19.0.30/32:443/tcp", "`198.19.0.30/32:443/tcp` is outside"),
        ("169.254.169.254/32:8080/tcp", "169.254.0.0/16"),
        ("198.19.0.10:80/udp", "`198.19.0.10/32:80/udp` is outside"),
        ("not-a-rule", "`not-a-rule`"),
    ] {
        let mut b = job("egress-subnet", Some(&net), &body);
        b.annotate("dev.brig.egress", ask);
        let id = unique_id("egress");
        let err = brig.fails(&["run", "--bundle", b.path().to_str().unwrap(), &id]);
        assert!(err.contains("dev.brig.egress") && err.contains(named), "{ask}: {err}");
        assert!(!brig.root.join(&id).exists(), "a refused create leaves nothing behind");
    }
    // `restricted` gives no network at all: any request is refused.
    let mut b = job("restricted", Some(&net), "true");
    b.annotate("dev.brig.egress", "198.19.0.10/32:80/tcp");
    let err = brig.fails(&["run", "--bundle", b.path().to_str().unwrap(), &unique_id("egress")]);
    assert!(err.contains("`198.19.0.10/32:80/tcp`") && err.contains("network.mode"), "{err}");
    assert!(net.brig_tables().is_empty());
}

#[test]
fn net_admin_is_refused_when_the_network_is_filtered() {
    let net = TestNet::new();
    let permissive_allow = r#"mode = "allow"
allow = ["198.19.0.10/32:80/tcp"]"#;
    let brig = brig_with(&[("egress-caps", derived(PERMISSIVE, "egress-caps", permissive_allow, &[]))]);
    let mut b = job("egress-caps", Some(&net), "true");
    for set in ["bounding", "effective", "permitted"] {
        b.set(&format!("/process/capabilities/{set}"), json!(["CAP_NET_ADMIN", "CAP_KILL"]));
    }
    let err = brig.fails(&["run", "--bundle", b.path().to_str().unwrap(), &unique_id("egress")]);
    assert!(err.contains("CAP_NET_ADMIN") && err.contains("process.capabilities"), "{err}");
}

/// A network namespace the runtime makes is known to be closed (no ruleset,
/// its devices and routes not read) only while no hook has run in it: an
/// interface a `createRuntime` hook moves in (as Docker's `libnetwork-setkey`
/// does at `prestart`) is found, and gets the ruleset.
#[test]
fn an_interface_a_hook_adds_gets_the_ruleset() {
    let hook_dir = tempfile::tempdir().unwrap();
    let hook = hook_dir.path().join("add-dummy");
    std::fs::write(
        &hook,
        "#!/bin/sh\npid=$(sed -n 's/.*\"pid\": *\\([0-9]*\\).*/\\1/p')\nexec ip link add brigdummy0 netns \"$pid\" type veth peer name brigpeer$pid\n",
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let ceiling = format!("[ceilings]\nhooks = [\"{}\"]\n", hook.display());
    let profile = derived(RESTRICTED, "egress-hooked", "mode = \"none\"", &[("[ceilings]\n", &ceiling)]);
    let brig = brig_with(&[("egress-hooked", profile)]);
    let mut b =
        job("egress-hooked", None, "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ' '; echo");
    b.set("/hooks", json!({ "createRuntime": [{ "path": hook, "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"] }] }));
    let id = unique_id("egress");
    let (code, out, err, _) = run_keep(&brig, &b, &id);
    assert_eq!(code, 0, "{err}{out}");
    assert!(out.split_whitespace().any(|d| d == "brigdummy0"), "the hook's interface: {out}");
    assert_loopback_only(&brig, &id, true);
    brig.ok(&["delete", &id]);

    // A hook that runs after create (here `poststart`) could move one in
    // once the namespace was found closed: the ruleset is installed anyway.
    let mut b = job("egress-hooked", None, "true");
    b.set("/hooks", json!({ "poststart": [{ "path": hook, "args": ["add-dummy"], "env": ["PATH=/bin"] }] }));
    let id = unique_id("egress");
    brig.ok(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert_loopback_only(&brig, &id, true);
    brig.ok(&["delete", "--force", &id]);
    assert_no_holders(&brig);
}

/// Under egress rules the job keeps no CAP_NET_RAW (Docker's default set
/// carries it): a packet socket would send frames below nftables, to any
/// address. It is dropped and recorded, not refused; an exec cannot get it
/// back, and an exec asking for CAP_NET_ADMIN is refused, whatever the
/// profile's ceiling.
#[test]
fn no_raw_network_access_under_egress_rules() {
    let network = r#"mode = "allow"
allow = ["198.19.0.10/32:80/tcp"]"#;
    let brig = brig_with(&[("egress-prm", derived(PERMISSIVE, "egress-prm", network, &[]))]);
    let caps = json!(["CAP_NET_RAW", "CAP_CHOWN", "CAP_KILL"]);
    let all_sets = json!({"bounding": caps, "effective": caps, "permitted": caps, "inheritable": [], "ambient": []});
    let body = "echo capeff=$(grep CapEff /proc/self/status | cut -f2); echo packet=$(/bin/brig-probe packet-socket)";
    let mut b = job("egress-prm", None, body);
    b.set("/process/capabilities", all_sets.clone());
    let (code, out, err) = brig.run(&b, &unique_id("rawnet"));
    assert_eq!(code, 0, "{err}{out}");
    let r = results(&out);
    let capeff = u64::from_str_radix(r.get("capeff").map(String::as_str).unwrap_or("x"), 16).unwrap();
    assert_eq!(capeff & (1 << 13), 0, "the job has CAP_NET_RAW: {out}");
    assert_ne!(capeff & (1 << 5), 0, "the job lost CAP_KILL too: {out}");
    assert_eq!(r.get("packet").map(String::as_str), Some("errno=EPERM"), "a packet socket opened: {out}");

    let mut sleeper = job("egress-prm", None, "sleep 30");
    sleeper.set("/process/capabilities", all_sets);
    let id = unique_id("rawnet-exec");
    brig.ok(&["run", "--detach", "--bundle", sleeper.path().to_str().unwrap(), &id]);
    let pfile = brig.dir.path().join("p.json");
    let exec_with = |caps: Value, args: &[&str]| {
        let sets = json!({"bounding": caps, "effective": caps, "permitted": caps});
        let p = json!({"user": {"uid": 0, "gid": 0}, "cwd": "/", "capabilities": sets, "args": args});
        std::fs::write(&pfile, p.to_string()).unwrap();
        brig.cmd_files(&["exec", "--process", pfile.to_str().unwrap(), &id])
    };
    let (code, _, err) = exec_with(json!(["CAP_NET_ADMIN"]), &["true"]);
    assert_ne!(code, 0, "an exec got CAP_NET_ADMIN under egress rules");
    assert!(err.contains("CAP_NET_ADMIN"), "{err}");
    let (code, out, err) = exec_with(json!(["CAP_NET_RAW"]), &["/bin/brig-probe", "packet-socket"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "errno=EPERM", "an exec opened a packet socket under egress rules");
    brig.ok(&["delete", "--force", &id]);
}

/// A namespace closed at `create` that the client wires before `start`
/// (Podman with a user namespace configures the runtime's network namespace
/// after `create`): `start` finds the new interface and route, and the job
/// runs under the ruleset, not on an open network.
#[test]
fn a_network_wired_between_create_and_start_gets_the_ruleset() {
    let net = TestNet::new();
    let servers = Servers::start(&net, &["198.19.0.10:8080"], &[]);
    let brig = brig_with(&[(
        "egress-late",
        derived(RESTRICTED, "egress-late", "mode = \"none\"", &[("tcp_connect = []", "tcp_connect = [8080]")]),
    )]);
    let body = script(
        r#"grep -q eth0: /proc/net/dev && echo "eth0=present"
get 198.19.0.10 8080 outside"#,
    );
    let b = job("egress-late", None, &body);
    let id = unique_id("egress-late");
    let out_file = brig.dir.path().join("late.out");
    let status = brig
        .command()
        .args(["create", "--bundle", b.path().to_str().unwrap(), &id])
        .stdout(std::fs::File::create(&out_file).unwrap())
        .stderr(std::fs::File::create(brig.dir.path().join("late.err")).unwrap())
        .status()
        .unwrap();
    assert!(status.success(), "{}", std::fs::read_to_string(brig.dir.path().join("late.err")).unwrap());
    assert_loopback_only(&brig, &id, false);
    // The client wires the job's namespace to the test host.
    let pid = brig.state(&id)["pid"].as_i64().unwrap().to_string();
    must(&["ip", "-n", &net.host, "link", "add", "wire0", "type", "veth", "peer", "name", "eth0", "netns", &pid]);
    must(&["ip", "-n", &net.host, "addr", "add", "198.18.5.1/24", "dev", "wire0"]);
    must(&["ip", "-n", &net.host, "link", "set", "wire0", "up"]);
    for cmd in [
        vec!["ip", "addr", "add", "198.18.5.2/24", "dev", "eth0"],
        vec!["ip", "link", "set", "eth0", "up"],
        vec!["ip", "route", "add", "default", "via", "198.18.5.1"],
    ] {
        let mut full = vec!["nsenter", "-t", pid.as_str(), "-n"];
        full.extend(cmd);
        must(&full);
    }
    brig.ok(&["start", &id]);
    assert_loopback_only(&brig, &id, true);
    brig.wait_status(&id, "stopped");
    let out = std::fs::read_to_string(&out_file).unwrap();
    expect(&out, &[("eth0", "present"), ("outside", "refused")]);
    assert!(!servers.saw("tcp 198.19.0.10:8080"));
    brig.ok(&["delete", &id]);
    assert_no_holders(&brig);
}
