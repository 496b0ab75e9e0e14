pub mod bpf;
pub mod controller;
pub mod emulator;
pub mod program;
// brig patch 6: bpf(2) without libbpf-sys.
pub mod sys;

#[cfg(test)]
#[allow(clippy::too_many_arguments)]
pub mod mocks;

pub use controller::Devices;
