//! `brig events`: a container's statistics in the shape `runc events` prints
//! them (runc's `types.Stats`), so that tools written against runc's output
//! (`runc events --stats ID | jq .data.memory.usage.usage`) read brig's too.
//!
//! The numbers come from libcgroups' reading of the cgroup; what it does not
//! read (cpuset, pressure totals) is read here from the same cgroup. Field
//! names and which zero values are left out follow runc's JSON tags
//! (`omitempty` on numbers and lists, never on nested records).

use std::collections::BTreeMap;
use std::path::Path;

use libcgroups::stats::{BlkioDeviceStat, MemoryData, Stats};
use serde::Serialize;

fn zero(n: &u64) -> bool {
    *n == 0
}

/// runc's `types.Stats`.
#[derive(Debug, Serialize)]
pub struct RuncStats {
    pub cpu: Cpu,
    pub cpuset: CpuSet,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
    /// brig has no Intel RDT support: runc's record with nothing in it.
    pub intel_rdt: BTreeMap<String, u64>,
    /// runc fills this only for interfaces libcontainer itself configured,
    /// which an OCI spec never asks for: always `null`, as in runc.
    pub network_interfaces: Option<Vec<()>>,
}

#[derive(Debug, Serialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<Pressure>,
}

#[derive(Debug, Serialize)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    #[serde(skip_serializing_if = "zero")]
    pub periods: u64,
    #[serde(skip_serializing_if = "zero")]
    pub throttled_periods: u64,
    #[serde(skip_serializing_if = "zero")]
    pub throttled_time: u64,
}

/// runc's `types.CPUSet` (cgroup v1 files; on v2 only the effective CPUs
/// and memory nodes exist, and the rest is 0 as in runc).
#[derive(Debug, Default, Serialize)]
pub struct CpuSet {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    pub cpu_exclusive: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    pub mem_hardwall: u64,
    pub mem_exclusive: u64,
    pub memory_migrate: u64,
    pub memory_spread_page: u64,
    pub memory_spread_slab: u64,
    pub memory_pressure: u64,
    pub sched_load_balance: u64,
    pub sched_relax_domain_level: i64,
}

#[derive(Debug, Serialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "zero")]
    pub max: u64,
    pub failcnt: u64,
}

impl From<&MemoryData> for MemoryEntry {
    fn from(d: &MemoryData) -> Self {
        MemoryEntry { limit: d.limit, usage: d.usage, max: d.max_usage, failcnt: d.fail_count }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Memory {
    #[serde(skip_serializing_if = "zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<Pressure>,
}

#[derive(Debug, Serialize)]
pub struct Pids {
    #[serde(skip_serializing_if = "zero")]
    pub current: u64,
    #[serde(skip_serializing_if = "zero")]
    pub limit: u64,
}

#[derive(Debug, Serialize)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "zero")]
    pub value: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blkio {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    // (sic: runc's tag)
    #[serde(rename = "ioQueueRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_queued_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_merged_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sectors_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<Pressure>,
}

#[derive(Debug, Serialize)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "zero")]
    pub max: u64,
    pub failcnt: u64,
}

/// A cgroup v2 `*.pressure` file (runc's `PSIStats`).
#[derive(Debug, Default, PartialEq, Serialize)]
pub struct Pressure {
    pub some: PressureLine,
    pub full: PressureLine,
}

#[derive(Debug, Default, PartialEq, Serialize)]
pub struct PressureLine {
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    pub total: u64,
}

/// Parses a `cpu.pressure`/`memory.pressure`/`io.pressure` file:
/// `some avg10=0.00 avg60=0.00 avg300=0.00 total=0` and a `full` line.
/// None if it is malformed.
pub fn parse_pressure(text: &str) -> Option<Pressure> {
    let mut p = Pressure::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut fields = line.split_whitespace();
        let target = match fields.next()? {
            "some" => &mut p.some,
            "full" => &mut p.full,
            _ => return None,
        };
        for field in fields {
            let (k, v) = field.split_once('=')?;
            match k {
                "avg10" => target.avg10 = v.parse().ok()?,
                "avg60" => target.avg60 = v.parse().ok()?,
                "avg300" => target.avg300 = v.parse().ok()?,
                "total" => target.total = v.parse().ok()?,
                _ => {}
            }
        }
    }
    Some(p)
}

/// Parses a cpuset list (`0-3,5`) into its members; None if malformed.
pub fn parse_cpu_list(text: &str) -> Option<Vec<u16>> {
    let mut out = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
                if a > b || usize::from(b - a) > 65_536 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

/// Where a cgroup's files are, per controller (cgroup v1) or one directory (v2).
pub trait CgroupFiles {
    fn read(&self, controller: &str, file: &str) -> Option<String>;
    fn unified(&self) -> bool;
}

/// The files of the cgroup at `cgroup_path` (as in the spec) on this host.
#[derive(Debug)]
pub struct HostCgroup<'a>(pub &'a Path);

impl CgroupFiles for HostCgroup<'_> {
    fn read(&self, controller: &str, file: &str) -> Option<String> {
        let controller = if self.unified() { "" } else { controller };
        std::fs::read_to_string(crate::cgroup::dir_for(controller, self.0).join(file)).ok()
    }
    fn unified(&self) -> bool {
        crate::cgroup::is_unified()
    }
}

fn cpuset(files: &dyn CgroupFiles) -> CpuSet {
    let list = |file: &str| files.read("cpuset", file).and_then(|t| parse_cpu_list(&t)).unwrap_or_default();
    if files.unified() {
        return CpuSet {
            cpus: list("cpuset.cpus.effective"),
            mems: list("cpuset.mems.effective"),
            ..CpuSet::default()
        };
    }
    let num = |file: &str| files.read("cpuset", file).and_then(|t| t.trim().parse::<u64>().ok()).unwrap_or(0);
    CpuSet {
        cpus: list("cpuset.cpus"),
        cpu_exclusive: num("cpuset.cpu_exclusive"),
        mems: list("cpuset.mems"),
        mem_hardwall: num("cpuset.mem_hardwall"),
        mem_exclusive: num("cpuset.mem_exclusive"),
        memory_migrate: num("cpuset.memory_migrate"),
        memory_spread_page: num("cpuset.memory_spread_page"),
        memory_spread_slab: num("cpuset.memory_spread_slab"),
        memory_pressure: num("cpuset.memory_pressure"),
        sched_load_balance: num("cpuset.sched_load_balance"),
        sched_relax_domain_level: files
            .read("cpuset", "cpuset.sched_relax_domain_level")
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0),
    }
}

fn entries(stats: &[BlkioDeviceStat]) -> Vec<BlkioEntry> {
    stats
        .iter()
        .map(|s| BlkioEntry {
            major: s.major,
            minor: s.minor,
            op: s.op_type.clone().unwrap_or_default(),
            value: s.value,
        })
        .collect()
}

/// libcgroups' `stats` of a cgroup, with what it does not read taken from
/// `files`, in runc's shape.
pub fn runc_stats(s: &Stats, files: &dyn CgroupFiles) -> RuncStats {
    // Pressure exists on cgroup v2 only (runc leaves `psi` out on v1).
    let pressure = |file: &str| {
        if files.unified() {
            files.read("", file).and_then(|t| parse_pressure(&t))
        } else {
            None
        }
    };
    let u = &s.cpu.usage;
    // runc reports nanoseconds: cgroup v1's cpuacct.stat counts clock ticks
    // (cpuacct.usage is nanoseconds already), v2's cpu.stat microseconds.
    let (total, kernel, user) = if crate::cgroup::is_unified() {
        (u.usage_total.saturating_mul(1000), u.usage_kernel.saturating_mul(1000), u.usage_user.saturating_mul(1000))
    } else {
        // SAFETY: sysconf takes a constant and returns a number.
        let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).ok().filter(|h| *h > 0).unwrap_or(100);
        let ns = |ticks: u64| ticks.saturating_mul(1_000_000_000 / hz);
        (u.usage_total, ns(u.usage_kernel), ns(u.usage_user))
    };
    RuncStats {
        cpu: Cpu {
            usage: CpuUsage {
                total,
                percpu: u.per_core_usage_total.clone(),
                percpu_kernel: u.per_core_usage_kernel.clone(),
                percpu_user: u.per_core_usage_user.clone(),
                kernel,
                user,
            },
            throttling: Throttling {
                periods: s.cpu.throttling.periods,
                throttled_periods: s.cpu.throttling.throttled_periods,
                throttled_time: s.cpu.throttling.throttled_time,
            },
            psi: pressure("cpu.pressure"),
        },
        cpuset: cpuset(files),
        memory: Memory {
            cache: s.memory.cache,
            usage: (&s.memory.memory).into(),
            swap: (&s.memory.memswap).into(),
            kernel: (&s.memory.kernel).into(),
            kernel_tcp: (&s.memory.kernel_tcp).into(),
            raw: s.memory.stats.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            psi: pressure("memory.pressure"),
        },
        pids: Pids { current: s.pids.current, limit: s.pids.limit },
        blkio: Blkio {
            io_service_bytes_recursive: entries(&s.blkio.service_bytes),
            io_serviced_recursive: entries(&s.blkio.serviced),
            io_queued_recursive: entries(&s.blkio.queued),
            io_service_time_recursive: entries(&s.blkio.service_time),
            io_wait_time_recursive: entries(&s.blkio.wait_time),
            io_merged_recursive: entries(&s.blkio.merged),
            io_time_recursive: entries(&s.blkio.time),
            sectors_recursive: entries(&s.blkio.sectors),
            psi: pressure("io.pressure"),
        },
        hugetlb: s
            .hugetlb
            .iter()
            .map(|(size, h)| (size.clone(), Hugetlb { usage: h.usage, max: h.max_usage, failcnt: h.fail_count }))
            .collect(),
        intel_rdt: BTreeMap::new(),
        network_interfaces: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake {
        unified: bool,
        files: BTreeMap<&'static str, &'static str>,
    }

    impl CgroupFiles for Fake {
        fn read(&self, _controller: &str, file: &str) -> Option<String> {
            self.files.get(file).map(|s| s.to_string())
        }
        fn unified(&self) -> bool {
            self.unified
        }
    }

    fn sample() -> Stats {
        let mut s = Stats::default();
        s.cpu.usage.usage_total = 4_518_760;
        s.cpu.usage.per_core_usage_total = vec![2_967_433, 1_551_327];
        s.cpu.usage.per_core_usage_kernel = vec![4_000_000, 0];
        s.cpu.usage.per_core_usage_user = vec![0, 0];
        s.memory.memory = MemoryData { usage: 2_449_408, max_usage: 2_449_408, fail_count: 0, limit: 536_870_912 };
        s.memory.cache = 1_810_432;
        s.memory.stats.insert("rss".into(), 20_480);
        s.pids.current = 2;
        s.pids.limit = 256;
        s.blkio.service_bytes = vec![BlkioDeviceStat { major: 8, minor: 0, op_type: Some("Read".into()), value: 4096 }];
        s
    }

    #[test]
    fn stats_have_runcs_names_and_leave_out_what_runc_leaves_out() {
        let v1 = Fake {
            unified: false,
            files: BTreeMap::from([
                ("cpuset.cpus", "0-1\n"),
                ("cpuset.mems", "0\n"),
                ("cpuset.sched_load_balance", "1\n"),
            ]),
        };
        let j = serde_json::to_value(runc_stats(&sample(), &v1)).unwrap();
        assert_eq!(j["cpu"]["usage"]["total"], 4_518_760);
        assert_eq!(j["cpu"]["usage"]["percpu"], serde_json::json!([2_967_433, 1_551_327]));
        assert_eq!(j["cpu"]["usage"]["kernel"], 0, "kernel and user are always there");
        assert_eq!(j["cpu"]["throttling"], serde_json::json!({}), "zero throttling figures are left out");
        assert!(j["cpu"].get("psi").is_none(), "no pressure on cgroup v1");
        assert_eq!(
            j["memory"]["usage"],
            serde_json::json!({"limit": 536_870_912u64, "usage": 2_449_408, "max": 2_449_408, "failcnt": 0})
        );
        assert_eq!(j["memory"]["swap"], serde_json::json!({"limit": 0, "failcnt": 0}));
        assert_eq!(j["memory"]["raw"]["rss"], 20_480);
        assert_eq!(j["memory"]["cache"], 1_810_432);
        assert_eq!(j["pids"], serde_json::json!({"current": 2, "limit": 256}));
        assert_eq!(
            j["blkio"],
            serde_json::json!({"ioServiceBytesRecursive": [{"major": 8, "op": "Read", "value": 4096}]})
        );
        assert_eq!(j["cpuset"]["cpus"], serde_json::json!([0, 1]));
        assert_eq!(j["cpuset"]["sched_load_balance"], 1);
        assert_eq!(j["hugetlb"], serde_json::json!({}));
        assert_eq!(j["intel_rdt"], serde_json::json!({}));
        assert!(j["network_interfaces"].is_null());
        assert!(j.get("kernel_tcp").is_none() && j["memory"].get("kernelTCP").is_some());
    }

    #[test]
    fn cgroup_v2_reports_pressure_and_effective_cpus() {
        let v2 = Fake {
            unified: true,
            files: BTreeMap::from([
                ("cpuset.cpus.effective", "0-3,6\n"),
                ("cpu.pressure", "some avg10=1.50 avg60=0.00 avg300=0.00 total=1234\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=99\n"),
            ]),
        };
        let j = serde_json::to_value(runc_stats(&sample(), &v2)).unwrap();
        assert_eq!(j["cpuset"]["cpus"], serde_json::json!([0, 1, 2, 3, 6]));
        assert_eq!(j["cpu"]["psi"]["some"]["total"], 1234);
        assert_eq!(j["cpu"]["psi"]["some"]["avg10"], 1.5);
        assert_eq!(j["cpu"]["psi"]["full"]["total"], 99);
        assert!(j["memory"].get("psi").is_none(), "a missing pressure file is left out");
    }

    #[test]
    fn malformed_files_are_left_out_not_guessed() {
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
        assert_eq!(parse_cpu_list(""), Some(vec![]));
        assert_eq!(parse_pressure("some avg10=x"), None);
        assert_eq!(parse_pressure("other avg10=1.0"), None);
    }
}
