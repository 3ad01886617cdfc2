// The built-in runtimes are embedded with include_dir, which cannot tell cargo to rebuild when
// they change; this does.
fn main() {
    println!("cargo:rerun-if-changed=../runtimes");
}
