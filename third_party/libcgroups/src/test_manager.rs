use std::cell::RefCell;
use std::convert::Infallible;

use nix::unistd::Pid;

use crate::common::{CgroupManager, ControllerOpt, FreezerState};
use crate::stats::Stats;

#[derive(Debug)]
pub struct TestManager {
    add_task_args: RefCell<Vec<Pid>>,
    pub apply_called: RefCell<bool>,
}

impl Default for TestManager {
    fn default() -> Self {
        Self {
            add_task_args: RefCell::new(vec![]),
            apply_called: RefCell::new(false),
        }
    }
}

impl CgroupManager for TestManager {
    type Error = Infallible;

    fn add_task(&self, pid: Pid) -> Result<(), Infallible> {
        self.add_task_args.borrow_mut().push(pid);
        Ok(())
    }

    // NOTE: The argument cannot be stored due to lifetime.
    fn apply(&self, _controller_opt: &ControllerOpt) -> Result<(), Infallible> {
        *self.apply_called.borrow_mut() = true;
        Ok(())
    }

    // (brig patch 3) The rest behave as an empty cgroup would, instead of
    // panicking: nothing to remove or freeze, no usage, the tasks added.
    fn remove(&self) -> Result<(), Infallible> {
        Ok(())
    }

    fn freeze(&self, _state: FreezerState) -> Result<(), Infallible> {
        Ok(())
    }

    fn stats(&self) -> Result<Stats, Infallible> {
        Ok(Stats::default())
    }

    fn get_all_pids(&self) -> Result<Vec<Pid>, Infallible> {
        Ok(self.add_task_args.borrow().clone())
    }
}

impl TestManager {
    pub fn get_add_task_args(&self) -> Vec<Pid> {
        self.add_task_args.borrow_mut().clone()
    }

    pub fn apply_called(&self) -> bool {
        *self.apply_called.borrow_mut()
    }
}
