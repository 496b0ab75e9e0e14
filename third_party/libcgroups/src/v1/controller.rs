use std::fs;
use std::path::Path;

use nix::unistd::Pid;

use crate::common::{self, CGROUP_PROCS, ControllerOpt, WrapIoResult, WrappedIoError};

/// Moves `pid` into the cgroup at `cgroup_path`. (brig patch, see
/// third_party/README.md.)
///
/// A write of a pid to `cgroup.procs` takes the kernel's global
/// `cgroup_threadgroup_rwsem` for writing, and the first writer after a quiet
/// spell waits for an RCU grace period: 10-15 ms of every container launch
/// on a small host. The kernel skips that lock when the calling thread moves
/// itself by writing `0` to the v1 `tasks` file (`cgroup_procs_write_start`:
/// "If the thread is `current`, it won't exit(2) under our hands or change
/// PID through exec(2)"). When the caller is `pid` and has a single thread,
/// moving the thread is moving the process, so that is what this does; it
/// falls back to `cgroup.procs` otherwise or if `tasks` is not writable
/// (a rootless delegation that chowned only `cgroup.procs`).
pub(super) fn attach(pid: Pid, cgroup_path: &Path) -> Result<(), WrappedIoError> {
    if pid == nix::unistd::getpid() && single_threaded()
        && common::write_cgroup_file_str(cgroup_path.join("tasks"), "0").is_ok()
    {
        return Ok(());
    }
    common::write_cgroup_file(cgroup_path.join(CGROUP_PROCS), pid)
}

/// The calling process has exactly one thread.
fn single_threaded() -> bool {
    fs::read_dir("/proc/self/task").map(|d| d.count() == 1).unwrap_or(false)
}

pub(super) trait Controller {
    type Error: From<WrappedIoError>;
    type Resource;

    /// Adds a new task specified by its pid to the cgroup
    fn add_task(pid: Pid, cgroup_path: &Path) -> Result<(), Self::Error> {
        fs::create_dir_all(cgroup_path).wrap_create_dir(cgroup_path)?;
        attach(pid, cgroup_path)?;
        Ok(())
    }

    /// Applies resource restrictions to the cgroup
    fn apply(controller_opt: &ControllerOpt, cgroup_root: &Path) -> Result<(), Self::Error>;

    /// Checks if the controller needs to handle this request
    fn needs_to_handle<'a>(controller_opt: &'a ControllerOpt) -> Option<&'a Self::Resource>;
}
