//! What a long end-to-end test measured (a chaos run, a kill mid-run): printed, as any test
//! output, and kept in `$SCIM_EDGE_TEST_REPORTS/<name>.txt` when that is set, which
//! `scripts/test.sh` sets and prints at the end of `make test` (cargo shows a passing test's
//! output only with `--nocapture`). Written when dropped, so a test that fails still reports.

use std::path::PathBuf;

pub struct Report {
    name: &'static str,
    text: String,
}

impl Report {
    pub fn new(name: &'static str) -> Report {
        Report { name, text: String::new() }
    }

    pub fn line(&mut self, line: impl Into<String>) {
        let line = line.into();
        println!("{line}");
        self.text.push_str(&line);
        self.text.push('\n');
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        let Some(dir) = std::env::var_os("SCIM_EDGE_TEST_REPORTS").map(PathBuf::from) else { return };
        if std::fs::create_dir_all(&dir).is_ok() {
            let _ = std::fs::write(dir.join(format!("{}.txt", self.name)), &self.text);
        }
    }
}

/// `report!(r, "fmt", args…)`: one line of the report `r`.
#[macro_export]
macro_rules! report {
    ($r:expr, $($arg:tt)*) => {
        $r.line(format!($($arg)*))
    };
}
