//! brig's patch 6 (third_party/README.md): the five bpf(2) commands the
//! device controller uses, made directly, in place of `libbpf-sys` (which
//! builds libbpf, libelf and zlib from C sources for these five calls).
//!
//! The functions keep libbpf's signatures and error convention (a negative
//! return value, `errno` set), so the callers in `bpf.rs` and their mocks
//! are unchanged apart from the module they name. Layouts follow
//! `include/uapi/linux/bpf.h`: each command's part of `union bpf_attr` is a
//! prefix struct, passed at the start of a zeroed buffer longer than the
//! whole union (see `bpf`).
#![allow(non_camel_case_types)]

use std::os::raw::{c_char, c_int, c_long, c_uint};

pub type __u32 = u32;
pub type size_t = u64;
pub type bpf_prog_type = u32;
pub type bpf_attach_type = u32;

pub const BPF_PROG_TYPE_CGROUP_DEVICE: bpf_prog_type = 15;
pub const BPF_CGROUP_DEVICE: bpf_attach_type = 6;
pub const BPF_F_ALLOW_MULTI: u32 = 1 << 1;

// struct bpf_cgroup_dev_ctx's access_type: the device type in the low 16
// bits, the access in the high 16 bits.
pub const BPF_DEVCG_ACC_MKNOD: u32 = 1 << 0;
pub const BPF_DEVCG_ACC_READ: u32 = 1 << 1;
pub const BPF_DEVCG_ACC_WRITE: u32 = 1 << 2;
pub const BPF_DEVCG_DEV_BLOCK: u32 = 1 << 0;
pub const BPF_DEVCG_DEV_CHAR: u32 = 1 << 1;

const BPF_PROG_LOAD: c_long = 5;
const BPF_PROG_ATTACH: c_long = 8;
const BPF_PROG_DETACH: c_long = 9;
const BPF_PROG_GET_FD_BY_ID: c_long = 13;
const BPF_PROG_QUERY: c_long = 16;

/// One eBPF instruction (`struct bpf_insn`), 8 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct bpf_insn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct GetFdByIdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// `union bpf_attr` is at most this large in any kernel so far (about 160
/// bytes in 6.18); the kernel accepts a longer attribute whose tail is zero.
const ATTR_BUFFER: usize = 256;

/// Calls bpf(2) with `attr` at the start of a zeroed buffer of
/// [`ATTR_BUFFER`] bytes, and copies back what the kernel wrote there.
/// Passing only `size_of::<T>()` is not enough: since Linux 6.17
/// `BPF_PROG_QUERY` writes `query.revision` (offset 56) whatever size it
/// was given (fixed in 7.2), which would land past a shorter struct.
fn bpf<T: Copy>(cmd: c_long, attr: &mut T) -> c_int {
    const { assert!(std::mem::size_of::<T>() <= ATTR_BUFFER) };
    let mut buf = [0u64; ATTR_BUFFER / 8];
    // SAFETY: `T` is a `repr(C)` plain-data prefix of `union bpf_attr`, no
    // larger than `buf` (checked above), and the two do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(
            attr as *const T as *const u8,
            buf.as_mut_ptr() as *mut u8,
            std::mem::size_of::<T>(),
        )
    };
    // SAFETY: `buf` is live, writable and `ATTR_BUFFER` bytes long; the
    // kernel reads and writes at most that many bytes of it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            buf.as_mut_ptr() as *mut libc::c_void,
            ATTR_BUFFER as c_uint,
        )
    };
    // SAFETY: as above; every bit pattern is a valid `T` (integers only).
    unsafe {
        std::ptr::copy_nonoverlapping(
            buf.as_ptr() as *const u8,
            attr as *mut T as *mut u8,
            std::mem::size_of::<T>(),
        )
    };
    // A file descriptor or 0 on success, -1 with errno set on failure.
    c_int::try_from(ret).unwrap_or(-1)
}

/// Loads a program; `_name` and `_opts` are not used (the device program has
/// neither a name nor load options). Returns its file descriptor.
///
/// # Safety
/// `license` must point to a NUL-terminated string and `insns` to
/// `insns_cnt` instructions, both alive for the call.
pub unsafe fn bpf_prog_load(
    prog_type: bpf_prog_type,
    _name: *const c_char,
    license: *const c_char,
    insns: *const bpf_insn,
    insns_cnt: size_t,
    _opts: *const c_char,
) -> c_int {
    let Ok(insn_cnt) = u32::try_from(insns_cnt) else {
        errno::set_errno(errno::Errno(libc::E2BIG));
        return -1;
    };
    let mut attr = ProgLoadAttr {
        prog_type,
        insn_cnt,
        insns: insns as u64,
        license: license as u64,
        ..Default::default()
    };
    bpf(BPF_PROG_LOAD, &mut attr)
}

/// Lists the programs of `attach_type` attached to the cgroup `target_fd`:
/// at most `*prog_cnt` ids into `prog_ids`; `*prog_cnt` becomes their number
/// (ENOSPC when they did not fit).
///
/// # Safety
/// `prog_ids` must have room for `*prog_cnt` ids; `attach_flags` and
/// `prog_cnt` must be valid for writes.
pub unsafe fn bpf_prog_query(
    target_fd: c_int,
    attach_type: bpf_attach_type,
    query_flags: __u32,
    attach_flags: *mut __u32,
    prog_ids: *mut __u32,
    prog_cnt: *mut __u32,
) -> c_int {
    let mut attr = QueryAttr {
        target_fd: target_fd as u32,
        attach_type,
        query_flags,
        prog_ids: prog_ids as u64,
        // SAFETY: valid for reads and writes (the caller's contract).
        prog_cnt: unsafe { *prog_cnt },
        ..Default::default()
    };
    let ret = bpf(BPF_PROG_QUERY, &mut attr);
    // The kernel reports the count (and the flags) also with ENOSPC.
    // SAFETY: as above.
    unsafe {
        *prog_cnt = attr.prog_cnt;
        if !attach_flags.is_null() {
            *attach_flags = attr.attach_flags;
        }
    }
    ret
}

/// A file descriptor for the program with this id.
pub fn bpf_prog_get_fd_by_id(id: __u32) -> c_int {
    let mut attr = GetFdByIdAttr {
        prog_id: id,
        ..Default::default()
    };
    bpf(BPF_PROG_GET_FD_BY_ID, &mut attr)
}

/// Detaches the program `prog_fd` from the cgroup `attachable_fd`.
pub fn bpf_prog_detach2(
    prog_fd: c_int,
    attachable_fd: c_int,
    attach_type: bpf_attach_type,
) -> c_int {
    let mut attr = AttachAttr {
        target_fd: attachable_fd as u32,
        attach_bpf_fd: prog_fd as u32,
        attach_type,
        ..Default::default()
    };
    bpf(BPF_PROG_DETACH, &mut attr)
}

/// Attaches the program `prog_fd` to the cgroup `attachable_fd`.
pub fn bpf_prog_attach(
    prog_fd: c_int,
    attachable_fd: c_int,
    attach_type: bpf_attach_type,
    flags: c_uint,
) -> c_int {
    let mut attr = AttachAttr {
        target_fd: attachable_fd as u32,
        attach_bpf_fd: prog_fd as u32,
        attach_type,
        attach_flags: flags,
    };
    bpf(BPF_PROG_ATTACH, &mut attr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_kernels() {
        assert_eq!(std::mem::size_of::<bpf_insn>(), 8);
        assert_eq!(std::mem::size_of::<ProgLoadAttr>(), 48);
        assert_eq!(std::mem::size_of::<AttachAttr>(), 16);
        assert_eq!(std::mem::size_of::<QueryAttr>(), 32);
        assert_eq!(std::mem::offset_of!(QueryAttr, prog_ids), 16);
        assert_eq!(std::mem::offset_of!(QueryAttr, prog_cnt), 24);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, kern_version), 40);
    }
}
