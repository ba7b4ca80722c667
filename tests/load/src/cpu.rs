//! CPU time of processes from `/proc/<pid>/stat` (user + system), to show where the cores go
//! during the steady window: the broker, the node, the load generator itself.

use std::process::Command;

use anyhow::{Context, Result};

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every Linux this runs on, the
/// fallback).
#[must_use]
pub fn ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|t| *t > 0)
        .unwrap_or(100)
}

/// User + system clock ticks a process has used, from the text of its `stat` file.
///
/// # Errors
/// If the text is not a `stat` line.
pub fn parse_stat_ticks(stat: &str) -> Result<u64> {
    // The command name (field 2) is in parentheses and may hold spaces: count from the last
    // ')'. After it come field 3 (state) onwards; utime and stime are fields 14 and 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("no ')' in the stat line")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Result<u64> {
        fields
            .get(n - 3)
            .context("the stat line is short")?
            .parse::<u64>()
            .context("a stat field is not a number")
    };
    Ok(field(14)? + field(15)?)
}

/// User + system clock ticks of process `pid` so far.
///
/// # Errors
/// If the process is gone or its stat file does not parse.
pub fn process_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("while reading {path}"))?;
    parse_stat_ticks(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_give_user_plus_system_ticks() {
        let line = "4242 (my proc) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 3 0 \
                    1000 1000000 200 18446744073709551615";
        assert_eq!(parse_stat_ticks(line).unwrap(), 281);
        assert!(parse_stat_ticks("4242 (x) S 1 2").is_err());
        assert!(parse_stat_ticks("no parenthesis").is_err());
    }

    #[test]
    fn this_process_has_used_some_ticks() {
        // Burn a little CPU so the counter is not 0 on a fast machine.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(process_ticks(std::process::id()).is_ok());
    }
}
