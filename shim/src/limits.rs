//! Keeping `update` within the profile: a client may lower limits, never
//! raise them above the profile's ceiling.

use oci_spec::runtime::LinuxResources;

use crate::state::RunRecord;

/// Refuses resource updates above the container's profile.
pub fn check_update(record: &RunRecord, r: &LinuxResources) -> Result<(), String> {
    let c = &record.cgroup_ceiling;
    let profile = &record.profile.name;
    let refuse = |field: &str, asked: String, max: String| {
        Err(format!("profile `{profile}` refuses update of {field} to {asked}: the profile's ceiling is {max}"))
    };
    let show = |v: i64| if v <= 0 { "unlimited".to_string() } else { v.to_string() };
    if let Some(m) = r.memory() {
        if let (Some(max), Some(v)) = (c.memory, m.limit()) {
            if v <= 0 || v as u64 > max.0 {
                return refuse("memory.limit", show(v), max.0.to_string());
            }
        }
        if let (Some(max), Some(v)) = (c.memory_swap, m.swap()) {
            if v <= 0 || v as u64 > max.0 {
                return refuse("memory.swap", show(v), max.0.to_string());
            }
        }
    }
    if let (Some(max), Some(p)) = (c.pids, r.pids()) {
        if p.limit() <= 0 || p.limit() > max {
            return refuse("pids.limit", show(p.limit()), max.to_string());
        }
    }
    if let (Some(cpus), Some(cpu)) = (c.cpus, r.cpu()) {
        if let Some(q) = cpu.quota() {
            let period = cpu.period().filter(|p| *p > 0).unwrap_or(100_000) as f64;
            if q <= 0 || q as f64 / period > cpus + 1e-9 {
                return refuse("cpu.quota", show(q), format!("{cpus} CPUs"));
            }
        }
    }
    Ok(())
}
