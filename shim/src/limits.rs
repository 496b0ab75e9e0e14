//! Keeping `update` within the profile: a client may lower limits, never
//! raise them above the profile's ceiling.

use oci_spec::runtime::LinuxResources;

use brig_profiles::model::CgroupSection;

use crate::state::RunRecord;

/// A value of 0 in an update means "unchanged", as in runc and libcgroups:
/// dockerd sends the container's whole resources with every update, zeros
/// for what it has no value for (`docker update --cpus 0.5` sends
/// `memory.limit` 0, `reservation` 0, CPU quota and period 0 without CPU
/// limits, …). Dropped, so that neither the profile check nor libcgroups
/// (which would write `max 0` to `cpu.max` on cgroup v2) takes them for
/// values.
pub fn zero_means_unchanged(mut r: LinuxResources) -> LinuxResources {
    let zero = |v: Option<i64>| v.filter(|v| *v != 0);
    if let Some(m) = r.memory_mut() {
        m.set_limit(zero(m.limit()));
        m.set_reservation(zero(m.reservation()));
        m.set_swap(zero(m.swap()));
        #[allow(deprecated)]
        m.set_kernel(zero(m.kernel()));
        m.set_kernel_tcp(zero(m.kernel_tcp()));
    }
    if let Some(cpu) = r.cpu_mut() {
        cpu.set_quota(zero(cpu.quota()));
        cpu.set_period(cpu.period().filter(|p| *p != 0));
        cpu.set_shares(cpu.shares().filter(|s| *s != 0));
    }
    if r.pids().as_ref().is_some_and(|p| p.limit() == 0) {
        r.set_pids(None);
    }
    if let Some(b) = r.block_io_mut() {
        b.set_weight(b.weight().filter(|w| *w != 0));
        b.set_leaf_weight(b.leaf_weight().filter(|w| *w != 0));
    }
    r
}

/// An update of the CPU quota alone or the period alone keeps the other
/// half as it is in the cgroup (`current`: quota, `-1` for none, and
/// period): filled in, so that the check sees the CPUs the job will get
/// (quota / period). Kubernetes resizes a pod without a CPU limit with a
/// period alone.
pub fn fill_cpu_pair(mut r: LinuxResources, current: Option<(i64, u64)>) -> LinuxResources {
    let Some((quota, period)) = current else { return r };
    if let Some(cpu) = r.cpu_mut() {
        match (cpu.quota(), cpu.period()) {
            (Some(_), None) => {
                cpu.set_period(Some(period));
            }
            (None, Some(_)) => {
                cpu.set_quota(Some(quota));
            }
            _ => {}
        }
    }
    r
}

/// Under a profile that allows no swap (`memory_swap` at most `memory`), a
/// memory limit updated alone keeps the job without swap: the swap
/// (memory plus swap, as OCI counts it) is set to the limit. This is what
/// `docker update --memory 64m` sends, with no `--memory-swap`. Elsewhere
/// a limit alone is refused, naming both (see [`check_update`]).
pub fn fill_swap_without_swap(mut r: LinuxResources, c: &CgroupSection) -> LinuxResources {
    let no_swap = matches!((c.memory, c.memory_swap), (Some(m), Some(s)) if s.0 <= m.0);
    if let (true, Some(m)) = (no_swap, r.memory_mut()) {
        if let (Some(limit), None) = (m.limit(), m.swap()) {
            m.set_swap(Some(limit));
        }
    }
    r
}

/// Refuses resource updates above the container's profile.
pub fn check_update(record: &RunRecord, r: &LinuxResources) -> Result<(), String> {
    check_update_against(&record.profile.name, &record.cgroup_ceiling, record.devices_allowed, r)
}

fn check_update_against(
    profile: &str,
    c: &CgroupSection,
    devices_allowed: bool,
    r: &LinuxResources,
) -> Result<(), String> {
    let refuse = |field: &str, asked: String, max: String| {
        Err(format!("profile `{profile}` refuses update of {field} to {asked}: the profile's ceiling is {max}"))
    };
    let refuse_because = |field: &str, why: &str| Err(format!("profile `{profile}` refuses update of {field}: {why}"));
    let show = |v: i64| if v <= 0 { "unlimited".to_string() } else { v.to_string() };
    // On cgroup v1 libcgroups writes the update's device rules as they are.
    if !devices_allowed {
        if let Err((i, why)) = brig_profiles::harden::check_device_rules(r.devices().as_deref().unwrap_or_default()) {
            return refuse_because(&format!("devices[{i}]"), &why);
        }
    }
    for key in r.unified().iter().flat_map(|u| u.keys()) {
        if let Some(why) = brig_profiles::harden::unified_key_problem(key) {
            return refuse_because(&format!("unified.{key}"), why);
        }
    }
    for (i, limit) in r.hugepage_limits().iter().flatten().enumerate() {
        if let Some(why) = brig_profiles::harden::hugepage_size_problem(limit.page_size()) {
            return refuse_because(&format!("hugepageLimits[{i}].pageSize"), why);
        }
    }
    if *c != Default::default() {
        // Raw cgroup v2 files (libcgroups writes them after its own limits).
        if let Some(key) = r.unified().as_ref().and_then(|u| u.keys().min()) {
            return refuse_because(
                &format!("unified.{key}"),
                "raw cgroup files would override the profile's cgroup limits",
            );
        }
        if r.memory().as_ref().is_some_and(|m| m.disable_oom_killer() == Some(true)) {
            return refuse_because("memory.disableOOMKiller", "the OOM killer enforces the profile's memory limit");
        }
        if r.network().is_some() {
            return refuse_because("network", "a traffic class could lift the host's network rules for the job");
        }
    }
    if let Some(m) = r.memory() {
        // cgroup v2 keeps memory.swap.max = swap - limit from the last write:
        // a new limit alone would leave the old swap on top of it.
        if c.memory_swap.is_some() && m.limit().is_some() != m.swap().is_some() {
            return refuse_because(
                "memory.limit",
                "under a swap ceiling, memory.limit and memory.swap are updated together",
            );
        }
        if let (Some(max), Some(v)) = (c.memory, m.limit()) {
            if v <= 0 || v as u64 > max.0 {
                return refuse("memory.limit", show(v), max.0.to_string());
            }
        }
        // Protection from reclaim, within the job's own memory (as at create).
        if let (Some(max), Some(v)) = (c.memory, m.reservation()) {
            let limit = m.limit().filter(|l| *l > 0).map_or(max.0, |l| l as u64);
            if v <= 0 || v as u64 > limit {
                return refuse("memory.reservation", show(v), limit.to_string());
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
    if let Some(cpu) = r.cpu() {
        if let (Some(max), Some(v)) = (c.cpu_shares, cpu.shares()) {
            if v > max {
                return refuse("cpu.shares", v.to_string(), max.to_string());
            }
        }
        // As at create: outside the profile's CPU limits altogether.
        if *c != Default::default() {
            if let Some(b) = cpu.burst().filter(|b| *b > 0) {
                return refuse("cpu.burst", b.to_string(), "no burst above the quota".into());
            }
            if cpu.realtime_runtime().is_some_and(|v| v != 0) || cpu.realtime_period().is_some_and(|v| v != 0) {
                return refuse("cpu.realtimeRuntime", "a real-time CPU budget".into(), "none".into());
            }
        }
    }
    if let (Some(max), Some(bio)) = (c.blkio_weight, r.block_io()) {
        let mut weights =
            vec![("blockIO.weight".to_string(), bio.weight()), ("blockIO.leafWeight".into(), bio.leaf_weight())];
        for (i, d) in bio.weight_device().iter().flatten().enumerate() {
            weights.push((format!("blockIO.weightDevice[{i}].weight"), d.weight()));
            weights.push((format!("blockIO.weightDevice[{i}].leafWeight"), d.leaf_weight()));
        }
        for (field, w) in weights {
            if let Some(w) = w.filter(|w| *w > max) {
                return refuse(&field, w.to_string(), max.to_string());
            }
        }
    }
    if let (Some(cpus), Some(cpu)) = (c.cpus, r.cpu()) {
        // The CPUs a job gets are quota / period: a new period alone (or a
        // quota checked against an assumed period) would scale the old quota.
        match (cpu.quota(), cpu.period()) {
            (None, None) => {}
            (Some(q), Some(period)) if period > 0 => {
                if q <= 0 || q as f64 / period as f64 > cpus + 1e-9 {
                    return refuse("cpu.quota", format!("{}/{period}", show(q)), format!("{cpus} CPUs"));
                }
                // The kernel's bounds (1 ms to 1 s periods, quotas of 1 ms
                // or more): on cgroup v1 a quota it refuses would leave the
                // new period over the old quota.
                if !(1000..=1_000_000).contains(&period) || q < 1000 {
                    return refuse_because(
                        "cpu.quota",
                        &format!("{q}/{period} is outside the kernel's bounds (period 1000..=1000000 µs, quota 1000 µs or more)"),
                    );
                }
            }
            _ => {
                return refuse_because(
                    "cpu.quota",
                    "under a CPU ceiling, cpu.quota and cpu.period (above zero) are updated together",
                )
            }
        }
    }
    Ok(())
}

/// The process rlimits `brig` itself can grant: without `CAP_SYS_RESOURCE` no
/// process may raise a hard limit above its own, so a job's hard limit above
/// brig's fails at launch with a bare `EPERM`. A limit the *profile* supplied
/// (the client asked for none) is lowered to brig's own, which only tightens
/// it, and recorded; a limit the client asked for is refused by name.
pub fn fit_rlimits_to_host(
    requested: &oci_spec::runtime::Spec,
    hardened: &mut brig_profiles::Hardened,
    host_hard: &dyn Fn(oci_spec::runtime::PosixRlimitType) -> Option<u64>,
) -> Result<(), String> {
    let asked: Vec<_> = requested
        .process()
        .as_ref()
        .and_then(|p| p.rlimits().clone())
        .unwrap_or_default()
        .iter()
        .map(|r| r.typ())
        .collect();
    let Some(process) = hardened.spec.process_mut() else { return Ok(()) };
    let Some(mut rlimits) = process.rlimits().clone() else { return Ok(()) };
    for r in rlimits.iter_mut() {
        let Some(max) = host_hard(r.typ()) else { continue };
        if r.hard() <= max {
            continue;
        }
        let name = serde_json::to_value(r.typ()).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        if asked.contains(&r.typ()) {
            return Err(format!(
                "process.rlimits {name}: hard limit {} is above the host's {max}, and brig lacks CAP_SYS_RESOURCE to raise it",
                r.hard()
            ));
        }
        let before = format!("{}:{}", r.soft(), r.hard());
        let (typ, soft) = (r.typ(), r.soft().min(max));
        *r = oci_spec::runtime::PosixRlimitBuilder::default()
            .typ(typ)
            .soft(soft)
            .hard(max)
            .build()
            .map_err(|e| format!("process.rlimits {name}: {e}"))?;
        hardened.tightened.push(brig_profiles::Tightening {
            field: format!("process.rlimits.{}", name.trim_start_matches("RLIMIT_").to_ascii_lowercase()),
            requested: format!("{before} (the profile's)"),
            applied: format!("{}:{} (the host's hard limit)", r.soft(), r.hard()),
        });
    }
    process.set_rlimits(Some(rlimits));
    Ok(())
}

/// brig's own hard limit for `typ` when it cannot raise it (no
/// `CAP_SYS_RESOURCE`); `None` when it can, or the limit is unknown.
pub fn own_hard_limit(typ: oci_spec::runtime::PosixRlimitType) -> Option<u64> {
    use oci_spec::runtime::PosixRlimitType as T;
    if caps::has_cap(None, caps::CapSet::Effective, caps::Capability::CAP_SYS_RESOURCE).unwrap_or(false) {
        return None;
    }
    let resource = match typ {
        T::RlimitCpu => libc::RLIMIT_CPU,
        T::RlimitFsize => libc::RLIMIT_FSIZE,
        T::RlimitData => libc::RLIMIT_DATA,
        T::RlimitStack => libc::RLIMIT_STACK,
        T::RlimitCore => libc::RLIMIT_CORE,
        T::RlimitRss => libc::RLIMIT_RSS,
        T::RlimitNproc => libc::RLIMIT_NPROC,
        T::RlimitNofile => libc::RLIMIT_NOFILE,
        T::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        T::RlimitAs => libc::RLIMIT_AS,
        T::RlimitLocks => libc::RLIMIT_LOCKS,
        T::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        T::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        T::RlimitNice => libc::RLIMIT_NICE,
        T::RlimitRtprio => libc::RLIMIT_RTPRIO,
        T::RlimitRttime => libc::RLIMIT_RTTIME,
    };
    let mut current = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit into the live struct we pass.
    let rc = unsafe { libc::getrlimit(resource, &mut current) };
    (rc == 0 && current.rlim_max != libc::RLIM_INFINITY).then_some(current.rlim_max)
}

#[cfg(test)]
mod rlimit_tests {
    use super::*;
    use oci_spec::runtime::PosixRlimitType;

    fn spec(rlimits: serde_json::Value) -> oci_spec::runtime::Spec {
        let mut s = oci_spec::runtime::Spec::default();
        let mut process = s.process().clone().unwrap();
        process.set_rlimits(Some(serde_json::from_value(rlimits).unwrap()));
        s.set_process(Some(process));
        s
    }

    fn hardened(s: oci_spec::runtime::Spec) -> brig_profiles::Hardened {
        let profile = brig_profiles::ProfileSet::load_one(None, "standard").unwrap().profile;
        brig_profiles::harden(&profile, s, &Default::default(), &crate::host::RealHost::default()).unwrap()
    }

    fn host(limit: u64) -> impl Fn(PosixRlimitType) -> Option<u64> {
        move |t| (t == PosixRlimitType::RlimitNofile).then_some(limit)
    }

    #[test]
    fn updates_are_held_to_the_profiles_weights_and_reservation() {
        let profile = brig_profiles::parse(
            "name = \"weighted\"\n[cgroup]\nmemory = \"256m\"\ncpu_shares = 512\nblkio_weight = 200\n",
            "weighted",
        )
        .unwrap();
        let check = |update: serde_json::Value| {
            let r: LinuxResources = serde_json::from_value(update).unwrap();
            check_update_against("weighted", &profile.cgroup, false, &r)
        };
        let refused = [
            (serde_json::json!({"cpu": {"shares": 1024}}), "cpu.shares"),
            (serde_json::json!({"cpu": {"burst": 1000}}), "cpu.burst"),
            (serde_json::json!({"cpu": {"realtimeRuntime": 1000}}), "cpu.realtimeRuntime"),
            (serde_json::json!({"blockIO": {"weight": 500}}), "blockIO.weight"),
            (serde_json::json!({"blockIO": {"leafWeight": 500}}), "blockIO.leafWeight"),
            (
                serde_json::json!({"blockIO": {"weightDevice": [{"major": 8, "minor": 0, "weight": 100}, {"major": 8, "minor": 16, "weight": 1000}]}}),
                "blockIO.weightDevice[1].weight",
            ),
            (serde_json::json!({"memory": {"reservation": -1}}), "memory.reservation"),
            (serde_json::json!({"memory": {"reservation": 536870912}}), "memory.reservation"),
            (serde_json::json!({"memory": {"limit": 134217728, "reservation": 200000000}}), "memory.reservation"),
            (serde_json::json!({"memory": {"disableOOMKiller": true}}), "memory.disableOOMKiller"),
            (serde_json::json!({"network": {"classID": 1048577}}), "network"),
            (serde_json::json!({"devices": [{"allow": true, "access": "rwm"}]}), "devices[0]"),
            // v1 reads `a` as everything, whatever the access says.
            (serde_json::json!({"devices": [{"allow": true, "type": "a", "access": "m"}]}), "devices[0]"),
            (serde_json::json!({"devices": [{"allow": true, "access": ""}]}), "devices[0]"),
            (
                serde_json::json!({"devices": [{"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwx"}]}),
                "devices[0]",
            ),
            (
                serde_json::json!({"devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "b", "major": 8, "minor": 0, "access": "rw"}]}),
                "devices[1]",
            ),
        ];
        for (update, field) in refused {
            let err = check(update.clone()).expect_err(&update.to_string());
            let named = [" ", ":"].iter().any(|end| err.contains(&format!("update of {field}{end}")));
            assert!(named && err.contains("weighted"), "{update}: {err}");
        }
        for allowed in [
            serde_json::json!({"cpu": {"shares": 256}}),
            serde_json::json!({"blockIO": {"weight": 100, "weightDevice": [{"major": 8, "minor": 0, "weight": 200}]}}),
            serde_json::json!({"memory": {"reservation": 134217728}}),
            // What containerd's CRI sends on a resize: the whole standard set.
            serde_json::json!({"devices": [
                {"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                {"allow": true, "type": "c", "major": 136, "access": "rwm"},
                {"allow": true, "type": "b", "access": "m"}
            ]}),
        ] {
            check(allowed.clone()).unwrap_or_else(|e| panic!("{allowed}: {e}"));
        }
    }

    /// A CPU ceiling is quota / period, and a swap ceiling on cgroup v2 is
    /// `memory.swap.max` = swap - limit as last written: an update of one
    /// half alone (or checked against an assumed period) would scale the
    /// other, so both are asked for together.
    #[test]
    fn updates_pair_quota_with_period_and_limit_with_swap() {
        let restricted = brig_profiles::ProfileSet::load_one(None, "restricted").unwrap().profile;
        let check = |update: serde_json::Value| {
            let r: LinuxResources = serde_json::from_value(update).unwrap();
            check_update_against("restricted", &restricted.cgroup, false, &r)
        };
        for (update, field) in [
            (serde_json::json!({"cpu": {"period": 1000}}), "cpu.quota"),
            (serde_json::json!({"cpu": {"quota": 100000}}), "cpu.quota"),
            (serde_json::json!({"cpu": {"quota": 15000, "period": 10000}}), "cpu.quota"),
            (serde_json::json!({"cpu": {"quota": 1000, "period": 0}}), "cpu.quota"),
            // Within the ratio, outside the kernel's bounds: on cgroup v1 the
            // period is written, the quota refused (100000/1000: 100 CPUs).
            (serde_json::json!({"cpu": {"quota": 500, "period": 1000}}), "cpu.quota"),
            (serde_json::json!({"cpu": {"quota": 2000000, "period": 2000000}}), "cpu.quota"),
            (serde_json::json!({"memory": {"limit": 536870912}}), "memory.limit"),
            (serde_json::json!({"memory": {"swap": 536870912}}), "memory.limit"),
        ] {
            let err = check(update.clone()).expect_err(&update.to_string());
            assert!(err.contains(&format!("update of {field}")) && err.contains("restricted"), "{update}: {err}");
        }
        for allowed in [
            serde_json::json!({"cpu": {"quota": 50000, "period": 100000}}),
            serde_json::json!({"cpu": {"quota": 10000, "period": 10000}}),
            serde_json::json!({"memory": {"limit": 268435456, "swap": 268435456}}),
            serde_json::json!({"cpu": {"shares": 512}, "pids": {"limit": 10}}),
        ] {
            check(allowed.clone()).unwrap_or_else(|e| panic!("{allowed}: {e}"));
        }
    }

    /// Under any profile (here `permissive`, with no cgroup limits), an
    /// update's unified key that leads out of the job's cgroup or moves
    /// processes into it is refused; a plain file name is not.
    #[test]
    fn unified_keys_stay_in_the_jobs_cgroup_under_every_profile() {
        let permissive = brig_profiles::ProfileSet::load_one(None, "permissive").unwrap().profile;
        for key in ["../../../../proc/sys/kernel/core_pattern", "..", "memory/../x", "cgroup.procs", "cgroup.threads"] {
            let r: LinuxResources = serde_json::from_value(serde_json::json!({"unified": {key: "1"}})).unwrap();
            let e = check_update_against("permissive", &permissive.cgroup, true, &r).unwrap_err();
            assert!(e.contains(&format!("unified.{key}")), "{key}: {e}");
        }
        let r: LinuxResources = serde_json::from_value(serde_json::json!({"unified": {"memory.high": "1G"}})).unwrap();
        check_update_against("permissive", &permissive.cgroup, true, &r).unwrap();
    }

    #[test]
    fn dockerds_zero_cpu_fields_mean_unchanged() {
        let restricted = brig_profiles::ProfileSet::load_one(None, "restricted").unwrap().profile;
        // What dockerd sends for `docker update --memory 256m --memory-swap 256m`
        // on a container without CPU limits.
        let r: LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"limit": 268435456, "swap": 268435456},
            "cpu": {"shares": 0, "quota": 0, "period": 0, "cpus": "", "mems": ""}
        }))
        .unwrap();
        assert!(check_update_against("restricted", &restricted.cgroup, false, &r).is_err(), "zero is not a value");
        let r = zero_means_unchanged(r);
        let cpu = r.cpu().clone().unwrap();
        assert_eq!((cpu.quota(), cpu.period()), (None, None));
        check_update_against("restricted", &restricted.cgroup, false, &r).unwrap();
        // What dockerd really sent (tests/fixtures/clients/docker/): both
        // are within restricted's ceilings once zeros mean "unchanged".
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/clients/docker");
        for name in ["update.0003.update.json", "update.0004.update.json"] {
            let text = std::fs::read_to_string(format!("{fixtures}/{name}")).unwrap();
            let r: LinuxResources = serde_json::from_str(&text).unwrap();
            let r = zero_means_unchanged(r);
            check_update_against("restricted", &restricted.cgroup, false, &r).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    /// `docker update --memory 64m` sends no swap: under a profile without
    /// swap the job stays without it; elsewhere both are asked for.
    #[test]
    fn a_limit_alone_keeps_a_job_without_swap() {
        let restricted = brig_profiles::ProfileSet::load_one(None, "restricted").unwrap().profile;
        let update: LinuxResources =
            serde_json::from_value(serde_json::json!({"memory": {"limit": 67108864}})).unwrap();
        let filled = fill_swap_without_swap(update.clone(), &restricted.cgroup);
        assert_eq!(filled.memory().unwrap().swap(), Some(67108864));
        check_update_against("restricted", &restricted.cgroup, false, &filled).unwrap();
        // Above the ceiling it is still refused, as memory.limit.
        let big: LinuxResources = serde_json::from_value(serde_json::json!({"memory": {"limit": 1073741824}})).unwrap();
        let err = check_update_against(
            "restricted",
            &restricted.cgroup,
            false,
            &fill_swap_without_swap(big, &restricted.cgroup),
        )
        .unwrap_err();
        assert!(err.contains("memory.limit to 1073741824"), "{err}");
        // A profile that allows swap: the swap to keep is not known, both are asked for.
        let swappy =
            brig_profiles::parse("name = \"swappy\"\n[cgroup]\nmemory = \"1g\"\nmemory_swap = \"2g\"\n", "swappy")
                .unwrap();
        let filled = fill_swap_without_swap(update, &swappy.cgroup);
        assert_eq!(filled.memory().unwrap().swap(), None);
        assert!(check_update_against("swappy", &swappy.cgroup, false, &filled)
            .unwrap_err()
            .contains("updated together"));
    }

    /// Kubernetes resizes a pod without a CPU limit with a period alone
    /// (containerd drops a quota of 0): the quota in the cgroup is kept, and
    /// the pair is what is checked.
    #[test]
    fn one_half_of_the_cpu_pair_is_checked_with_the_other_in_the_cgroup() {
        let restricted = brig_profiles::ProfileSet::load_one(None, "restricted").unwrap().profile;
        let check = |update: serde_json::Value, current: Option<(i64, u64)>| {
            let r: LinuxResources = serde_json::from_value(update).unwrap();
            check_update_against("restricted", &restricted.cgroup, false, &fill_cpu_pair(r, current))
        };
        let in_cgroup = Some((100_000, 100_000));
        check(serde_json::json!({"cpu": {"period": 100000}}), in_cgroup).unwrap();
        check(serde_json::json!({"cpu": {"quota": 50000}}), in_cgroup).unwrap();
        // A new period alone would scale the quota in the cgroup: 100 CPUs.
        let err = check(serde_json::json!({"cpu": {"period": 1000}}), in_cgroup).unwrap_err();
        assert!(err.contains("cpu.quota to 100000/1000") && err.contains("1 CPUs"), "{err}");
        // Against the period in the cgroup, not an assumed one.
        assert!(check(serde_json::json!({"cpu": {"quota": 150000}}), Some((15000, 10000))).is_err());
        assert!(check(serde_json::json!({"cpu": {"quota": 10000}}), Some((15000, 10000))).is_ok());
        // Unreadable cgroup: both halves are asked for.
        let err = check(serde_json::json!({"cpu": {"period": 100000}}), None).unwrap_err();
        assert!(err.contains("updated together"), "{err}");
    }

    #[test]
    fn a_profile_default_above_the_host_is_lowered_and_recorded() {
        let requested = spec(serde_json::json!([]));
        let mut h = hardened(requested.clone());
        fit_rlimits_to_host(&requested, &mut h, &host(20000)).unwrap();
        let rl = h.spec.process().as_ref().unwrap().rlimits().clone().unwrap();
        let nofile = rl.iter().find(|r| r.typ() == PosixRlimitType::RlimitNofile).unwrap();
        assert_eq!((nofile.soft(), nofile.hard()), (20000, 20000));
        assert!(h.tightened.iter().any(|t| t.field == "process.rlimits.nofile" && t.applied.contains("host")));
    }

    #[test]
    fn a_client_ask_above_the_host_is_refused_by_name() {
        let requested = spec(serde_json::json!([{"type": "RLIMIT_NOFILE", "soft": 4096, "hard": 30000}]));
        let mut h = hardened(requested.clone());
        let err = fit_rlimits_to_host(&requested, &mut h, &host(20000)).unwrap_err();
        assert!(err.contains("RLIMIT_NOFILE") && err.contains("30000") && err.contains("20000"), "{err}");
        // Within the host's limit: untouched.
        let requested = spec(serde_json::json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096}]));
        let mut h = hardened(requested.clone());
        fit_rlimits_to_host(&requested, &mut h, &host(20000)).unwrap();
    }
}
