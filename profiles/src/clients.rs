//! What Docker, Podman and containerd put into a spec on their own.
//!
//! A profile tightens these client defaults silently (and records it) instead of
//! refusing them, so that `docker run --runtime brig IMAGE` works with no flags.
//! Anything else beyond a profile's ceiling is an explicit ask and is refused.
//! The lists come from the captured configs in `tests/fixtures/clients/`.

/// The union of the default capability sets: Docker 20.10 and containerd 1.6
/// (`oci.WithDefaultSpec`) send these 14; Podman 4.3 sends 11 of them; runc's
/// `spec` template sends AUDIT_WRITE, KILL and NET_BIND_SERVICE.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_MKNOD",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];

/// The device-cgroup allow rules clients send on their own, as
/// `(type, major, minor)` (`None`: any minor): `null`, `zero`, `full`,
/// `random`, `urandom`, `tty`, `console`, `ptmx` and the pseudo-terminals
/// (containerd 1.6 sends all of these; Docker 20.10 a subset; Podman only a
/// deny-all rule), and `/dev/net/tun` (runc's and older Docker's defaults).
pub const STANDARD_DEVICES: &[(&str, i64, Option<i64>)] = &[
    ("c", 1, Some(3)),
    ("c", 1, Some(5)),
    ("c", 1, Some(7)),
    ("c", 1, Some(8)),
    ("c", 1, Some(9)),
    ("c", 5, Some(0)),
    ("c", 5, Some(1)),
    ("c", 5, Some(2)),
    ("c", 136, None),
    ("c", 10, Some(200)),
];

/// Container files that clients bind-mount writable from their own state
/// directories (`/etc/resolv.conf` and friends).
pub const CLIENT_FILES: &[&str] = &[
    "/etc/resolv.conf",
    "/etc/hostname",
    "/etc/hosts",
    "/run/.containerenv",
    "/dev/termination-log",
    "/dev/shm",
    "/run/secrets",
];

/// The init programs clients bind read-only into a job for `--init`, by
/// destination: Docker's tini (`/usr/bin/docker-init`, Debian's
/// `tini-static`), Podman's catatonit. Only a root-owned regular file (no
/// group or other write) under
/// `/usr/` with one of these names is taken for one.
pub const CLIENT_INITS: &[(&str, &[&str])] =
    &[("/sbin/docker-init", &["docker-init", "tini", "tini-static"]), ("/run/podman-init", &["catatonit"])];

/// Host directories where clients keep those files.
pub const CLIENT_STATE_PREFIXES: &[&str] = &[
    "/var/lib/docker/containers/",
    "/var/lib/containers/storage/",
    "/run/containers/storage/",
    "/var/run/containers/storage/",
    "/run/user/",
    "/var/lib/containerd/io.containerd.grpc.v1.cri/",
    "/run/containerd/io.containerd.grpc.v1.cri/",
    "/var/lib/kubelet/pods/",
];

/// sysctls that clients set on their own (Docker 20.10 on a bridge network).
pub const DEFAULT_SYSCTLS: &[&str] = &["net.ipv4.ip_unprivileged_port_start", "net.ipv4.ping_group_range"];

/// Docker's `prestart` hook: `/proc/<dockerd pid>/exe libnetwork-setkey ...`,
/// which moves the container into its network sandbox.
pub const DOCKER_SETKEY_ARG: &str = "libnetwork-setkey";

/// Whether a hook is Docker's own: `/proc/<dockerd pid>/exe
/// libnetwork-setkey ...`, given whether its path is a process running the
/// host's dockerd (`Host::is_dockerd_process_binary`).
pub fn is_client_hook(is_dockerd: bool, args: &[String]) -> bool {
    is_dockerd && args.first().is_some_and(|a| a == DOCKER_SETKEY_ARG)
}
