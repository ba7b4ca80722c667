//! `agritrace config check FILE` as an operator runs it: exit 0 and "ok" for a file the node
//! starts with, exit 1 and one `FILE:LINE: ...` line per problem otherwise.

use std::path::Path;
use std::process::Command;

/// Runs `agritrace config check` on `text`; the exit code and standard output.
fn config_check(dir: &Path, name: &str, text: &str) -> (i32, String) {
    let file = dir.join(name);
    std::fs::write(&file, text).expect("write the configuration");
    let output = Command::new(env!("CARGO_BIN_EXE_agritrace"))
        .args(["config", "check"])
        .arg(&file)
        .env_remove("AGRITRACE_LOG_FORMAT")
        .output()
        .expect("run agritrace config check");
    (
        output.status.code().expect("an exit code"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn a_good_file_passes_and_a_bad_one_is_explained_line_by_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data").display().to_string();

    let (code, out) = config_check(
        dir.path(),
        "good.toml",
        &format!(
            "data_dir = {data:?}\norigin = \"trace.example.cn/log\"\nlog_format = \"json\"\n\
             [broker]\nport = 1884\n"
        ),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.trim_end().ends_with(": ok"), "{out}");

    let (code, out) = config_check(
        dir.path(),
        "bad.toml",
        &format!(
            "data_dir = {data:?}\nbatch_window_ms = 0\nlog_format = \"xml\"\n[broker]\n\
             prot = 1883\n[[witnesses]]\nurl = \"http://127.0.0.1:7380\"\nkey = \"not-a-key\"\n"
        ),
    );
    assert_eq!(code, 1, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "one line per problem: {out}");
    for (line, (number, needle)) in lines.iter().zip([
        (2, "batch_window_ms"),
        (3, "log_format"),
        (5, "did you mean `port`?"),
        (6, "bad key"),
    ]) {
        assert!(
            line.contains(&format!("bad.toml:{number}: ")) && line.contains(needle),
            "{line:?} should be line {number} naming {needle:?}"
        );
    }

    let (code, out) = config_check(dir.path(), "broken.toml", "[broker\nport = 1\n");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("broken.toml:1: not valid TOML"), "{out}");
}
