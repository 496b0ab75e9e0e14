// The supervisor runs inside the container's root filesystem, which may hold no
// C library at all (a busybox-static image), so it is linked freestanding.
fn main() {
    for arg in ["-nostartfiles", "-nostdlib", "-static", "-no-pie", "-Wl,--build-id=none"] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
