// Here we duplicate the signatures of external functions and apply
// the mockall::automock macro to generate mock modules for use
// in tests, allowing us to exercise code paths without eg making syscalls
//
// brig's patch (third_party/README.md): the bodies below are never called
// (tests call the generated `mock_*` functions; the module is built only for
// this crate's tests, with the `cgroupsv2_devices` feature). Instead of
// panicking placeholders they fail like a syscall the kernel does not have
// (-1), so that a call by mistake is an error, not a panic.

#[cfg_attr(test, automock())]
pub mod libc {
    #[cfg(target_env = "musl")]
    #[allow(non_camel_case_types)]
    pub type __rlimit_resource_t = libc::c_int;

    #[cfg(not(target_env = "musl"))]
    #[allow(non_camel_case_types)]
    pub type __rlimit_resource_t = libc::__rlimit_resource_t;

    pub fn setrlimit(_resource: __rlimit_resource_t, _rlim: *const libc::rlimit) -> libc::c_int {
        -1
    }
}

#[cfg_attr(test, automock())]
pub mod libbpf_sys {
    pub fn bpf_prog_load(
        _type_: crate::v2::devices::sys::bpf_prog_type,
        _name: *const ::std::os::raw::c_char,
        _license: *const ::std::os::raw::c_char,
        _insns: *const crate::v2::devices::sys::bpf_insn,
        _insns_cnt: u64,
        _opts: *const ::std::os::raw::c_char,
    ) -> ::std::os::raw::c_int {
        -1
    }

    pub fn bpf_prog_query(
        _target_fd: ::std::os::raw::c_int,
        _type_: crate::v2::devices::sys::bpf_attach_type,
        _query_flags: u32,
        _attach_flags: *mut u32,
        _prog_ids: *mut u32,
        _prog_cnt: *mut u32,
    ) -> ::std::os::raw::c_int {
        -1
    }

    pub fn bpf_prog_get_fd_by_id(_id: u32) -> ::std::os::raw::c_int {
        -1
    }

    pub fn bpf_prog_detach2(
        _prog_fd: ::std::os::raw::c_int,
        _attachable_fd: ::std::os::raw::c_int,
        _type_: crate::v2::devices::sys::bpf_attach_type,
    ) -> ::std::os::raw::c_int {
        -1
    }

    pub fn bpf_prog_attach(
        _prog_fd: ::std::os::raw::c_int,
        _attachable_fd: ::std::os::raw::c_int,
        _type_: crate::v2::devices::sys::bpf_attach_type,
        _flags: ::std::os::raw::c_uint,
    ) -> ::std::os::raw::c_int {
        -1
    }
}
