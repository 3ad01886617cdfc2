//! The built-in runtimes are embedded with include_dir, which cannot tell cargo to rebuild when
//! they change; this does. It also compiles the readiness probe (probe/main.rs) that every build
//! context carries: statically, because it must run in any image, FROM scratch included.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=../runtimes");
    println!("cargo:rerun-if-changed=probe/main.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = std::env::var("TARGET").expect("cargo sets TARGET");
    // The probe runs where faaso builds images: the machine faaso itself is built for.
    let output = Command::new(rustc)
        .args([
            "--edition",
            "2024",
            "--crate-type",
            "bin",
            "--crate-name",
            "faaso_probe",
        ])
        .args(["--target", &target, "-O"])
        .args(["-C", "target-feature=+crt-static", "-C", "strip=symbols"])
        .args(["-C", "panic=abort", "-C", "codegen-units=1"])
        .arg("probe/main.rs")
        .arg("-o")
        .arg(out.join("faaso-probe"))
        .output()
        .expect("rustc should start");
    assert!(
        output.status.success(),
        "compiling the readiness probe (schema/probe/main.rs) failed; a static build needs the \
         target's static libc (glibc: libc6-dev):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
