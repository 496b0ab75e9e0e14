//! `brig-probe`: runs inside test containers and tries one thing, printing
//! `ok` or `errno=NAME` (or dying by a signal), so that tests assert the exact
//! failure.
fn main() {
    println!("ok");
}
