//! Builds the Spin component (`plugin/spin`, release, `wasm32-wasip2`) that the host tests and
//! the dev server run, and exports its path as `SCIM_EDGE_SPIN_WASM`. No "run cargo build
//! first": the artefact under test is always built from the sources next to it.

use std::path::{Path, PathBuf};
use std::process::{exit, Command};
use std::{env, fs};

const TARGET: &str = "wasm32-wasip2";

/// Environment the outer cargo sets for this build script that must not reach the inner
/// build: flags and wrappers meant for the host build (clippy's `RUSTC_WORKSPACE_WRAPPER`
/// included), the outer target dir and target, and the outer jobserver.
const LEAKING: &[&str] = &[
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_PKG_NAME",
    "TARGET",
    "HOST",
    "OUT_DIR",
    "OPT_LEVEL",
    "PROFILE",
    "DEBUG",
    "NUM_JOBS",
    "RUSTC_LINKER",
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let Some(workspace) = manifest_dir.parent().map(Path::to_path_buf) else {
        fail("host-tests must live one level below the workspace root");
    };
    for watched in [
        "plugin/core/src",
        "plugin/core/build.rs",
        "plugin/core/Cargo.toml",
        "plugin/spin/src",
        "plugin/spin/Cargo.toml",
        "scripts/wasm-opt.sh",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(watched).display());
    }
    // The release profile and the locked dependency versions shape the artefact too.
    println!("cargo:rerun-if-changed={}", workspace.join("Cargo.toml").display());
    println!("cargo:rerun-if-changed={}", workspace.join("Cargo.lock").display());

    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc).args(["--print", "sysroot"]).output().ok();
    let sysroot = sysroot.map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if !sysroot.is_some_and(|s| s.join("lib/rustlib").join(TARGET).is_dir()) {
        fail(&format!(
            "the Rust target {TARGET} is not installed; run `rustup target add {TARGET}` \
             (the Spin component under test is built for it)"
        ));
    }

    // A separate target dir: the outer build holds the lock on the workspace's.
    let target_dir = workspace.join("target").join("wasm");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&workspace)
        .args(["build", "-p", "scim-edge-spin", "--release", "--target", TARGET, "--target-dir"])
        .arg(&target_dir);
    for var in LEAKING {
        cmd.env_remove(var);
    }
    for (var, _) in env::vars_os() {
        let var = var.to_string_lossy();
        if var.starts_with("CARGO_FEATURE_") || var.starts_with("CARGO_CFG_") || var.starts_with("DEP_") {
            cmd.env_remove(&*var);
        }
    }
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => fail(&format!("building the Spin component failed ({s}); see the compiler output above")),
        Err(e) => fail(&format!("could not run cargo to build the Spin component: {e}")),
    }

    let wasm = target_dir.join(TARGET).join("release").join("scim_edge_spin.wasm");
    // The optional post-build step the shipped artefact gets too: binaryen's wasm-opt on the
    // component's core module, in place, when wasm-opt is installed (the script says when not).
    match Command::new("bash").arg(workspace.join("scripts/wasm-opt.sh")).arg(&wasm).status() {
        Ok(s) if s.success() => {}
        Ok(s) => fail(&format!("scripts/wasm-opt.sh {} failed ({s})", wasm.display())),
        Err(e) => fail(&format!("could not run scripts/wasm-opt.sh: {e}")),
    }
    let size = match fs::metadata(&wasm) {
        Ok(m) => m.len(),
        Err(e) => fail(&format!("{} was not produced: {e}", wasm.display())),
    };
    println!("cargo:rustc-env=SCIM_EDGE_SPIN_WASM={}", wasm.display());
    println!("cargo:warning=Spin component: {} ({size} bytes, release)", wasm.display());
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    exit(1)
}
