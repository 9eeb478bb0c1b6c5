//! Compresses the admin page's files (`src/page/*`) with gzip into `OUT_DIR`, where
//! `src/page.rs` embeds them with `include_bytes!`: the plugin carries ~18 KB of gzip instead of
//! ~70 KB of text, and serves the bytes as they are (`Content-Encoding: gzip`).
//!
//! Runs on the build host (flate2 is a build-dependency), so the wasm targets never see it. The
//! output is deterministic: no file name and a zero modification time in the gzip header.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::{env, fs};

use flate2::write::GzEncoder;
use flate2::Compression;

/// The files of the admin page, under `src/page/`.
const FILES: [&str; 3] = ["index.html", "app.js", "app.css"];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    for name in FILES {
        let src = manifest_dir.join("src/page").join(name);
        println!("cargo:rerun-if-changed={}", src.display());
        let text = read(&src);
        write(&out_dir.join(format!("{name}.gz")), &gzip(&text));
    }
    println!("cargo:rerun-if-changed=build.rs");
}

fn gzip(data: &[u8]) -> Vec<u8> {
    // GzEncoder's default header: no file name, mtime 0, OS "unknown" — the same bytes on
    // every machine.
    let mut enc = GzEncoder::new(Vec::with_capacity(data.len() / 3), Compression::best());
    if let Err(e) = enc.write_all(data) {
        fail(&format!("gzip: {e}"));
    }
    enc.finish().unwrap_or_else(|e| fail(&format!("gzip: {e}")))
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", path.display())))
}

fn write(path: &Path, bytes: &[u8]) {
    if let Err(e) = fs::write(path, bytes) {
        fail(&format!("cannot write {}: {e}", path.display()));
    }
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1)
}
