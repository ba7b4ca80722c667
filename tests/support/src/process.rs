//! A child process of a test: started with its arguments and extra environment, its standard
//! output and error in files of the test's directory (read while it runs and after it died),
//! stopped with SIGKILL or SIGTERM, and waited for with a guard limit.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::wait;

/// Lines of each output shown when a process did not exit in time.
const TAIL_LINES: usize = 60;

/// A running child process; dropping it SIGKILLs it if it still runs.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    patience: Duration,
}

impl Process {
    /// Starts `program` with `args` and the extra environment `env`; its output goes to
    /// `<dir>/<name>.stdout` and `<dir>/<name>.stderr`. Waits for its exit give up after
    /// [`crate::PATIENCE`] unless [`Process::with_patience`] says otherwise.
    #[must_use]
    pub fn spawn(
        dir: &Path,
        name: &str,
        program: &Path,
        args: &[impl AsRef<OsStr>],
        env: &[(&str, String)],
    ) -> Self {
        let stdout = dir.join(format!("{name}.stdout"));
        let stderr = dir.join(format!("{name}.stderr"));
        let create = |path: &Path| {
            File::create(path).unwrap_or_else(|error| panic!("create {}: {error}", path.display()))
        };
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(create(&stdout))
            .stderr(create(&stderr));
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", program.display()));
        Self {
            name: name.to_owned(),
            child,
            stdout,
            stderr,
            patience: crate::PATIENCE,
        }
    }

    /// Waits for the exit give up after `limit` (a guard against hangs, not a timing
    /// assertion).
    #[must_use]
    pub fn with_patience(mut self, limit: Duration) -> Self {
        self.patience = limit;
        self
    }

    /// The name its output files carry.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .try_wait()
            .unwrap_or_else(|error| panic!("polling {}: {error}", self.name))
    }

    /// SIGKILL: no clean shutdown, no goodbye to anyone it talks to; then reaps it.
    pub fn kill9(&mut self) {
        self.child
            .kill()
            .unwrap_or_else(|error| panic!("SIGKILL {}: {error}", self.name));
        self.child
            .wait()
            .unwrap_or_else(|error| panic!("reaping {}: {error}", self.name));
    }

    /// SIGTERM (a clean stop), then [`Process::wait`] for the exit it leads to.
    pub async fn terminate(&mut self) -> ExitStatus {
        // std sends only SIGKILL, and this crate keeps to std and tokio: `kill` sends SIGTERM.
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap_or_else(|error| panic!("run kill -TERM for {}: {error}", self.name));
        assert!(
            status.success(),
            "kill -TERM {} failed: {status}",
            self.name
        );
        self.wait().await
    }

    /// Waits for the exit without blocking the runtime; after the guard limit, kills the
    /// process and panics with the tails of its output.
    pub async fn wait(&mut self) -> ExitStatus {
        let exited = wait::poll_async(self.patience, || std::future::ready(self.try_wait())).await;
        exited.unwrap_or_else(|| self.hung())
    }

    /// [`Process::wait`] blocking the thread, for tests without a runtime.
    pub fn wait_blocking(&mut self) -> ExitStatus {
        let exited = wait::poll(self.patience, || self.try_wait());
        exited.unwrap_or_else(|| self.hung())
    }

    /// Everything written to standard output so far.
    #[must_use]
    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// The last `lines` lines written to standard error.
    #[must_use]
    pub fn stderr_tail(&self, lines: usize) -> String {
        tail(&fs::read_to_string(&self.stderr).unwrap_or_default(), lines)
    }

    fn hung(&mut self) -> ! {
        // Best effort: the panic below is the failure being reported.
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!(
            "{} did not exit within {:?}\n--- stdout (tail)\n{}\n--- stderr (tail)\n{}",
            self.name,
            self.patience,
            tail(&self.stdout(), TAIL_LINES),
            self.stderr_tail(TAIL_LINES)
        );
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::Scratch;

    fn shell(dir: &Scratch, name: &str, script: &str) -> Process {
        Process::spawn(dir.path(), name, Path::new("/bin/sh"), &["-c", script], &[])
    }

    #[test]
    fn output_and_environment_go_to_files_named_after_the_process() {
        let dir = Scratch::new("output");
        let mut process = Process::spawn(
            dir.path(),
            "echo",
            Path::new("/bin/sh"),
            &[
                "-c",
                "echo out; for i in 1 2 3; do echo \"$GREETING $i\" >&2; done",
            ],
            &[("GREETING", "hello".to_owned())],
        );
        let status = process.wait_blocking();
        assert!(status.success(), "{status}");
        assert_eq!(process.stdout(), "out\n");
        assert_eq!(process.stderr_tail(2), "hello 2\nhello 3");
        assert_eq!(
            fs::read_to_string(dir.path().join("echo.stderr")).expect("the stderr file"),
            "hello 1\nhello 2\nhello 3\n"
        );
    }

    #[test]
    fn a_killed_process_is_reaped_and_did_not_succeed() {
        let dir = Scratch::new("kill");
        let mut process = shell(&dir, "sleeper", "sleep 600");
        assert_eq!(process.try_wait(), None, "still sleeping");
        process.kill9();
        let status = process.try_wait().expect("reaped by kill9");
        assert!(!status.success(), "{status}");
    }

    #[tokio::test]
    async fn terminate_sends_sigterm_and_returns_the_exit_it_leads_to() {
        let dir = Scratch::new("term");
        // Exits 7 on SIGTERM, once the trap is installed (it says so on stdout).
        let mut process = shell(
            &dir,
            "trapper",
            "trap 'exit 7' TERM; echo ready; while :; do sleep 0.05; done",
        );
        crate::wait_until_async("the trap to be installed", crate::PATIENCE, || {
            std::future::ready(process.stdout() == "ready\n")
        })
        .await;
        let status = process.terminate().await;
        assert_eq!(status.code(), Some(7), "{status}");
    }

    #[test]
    fn a_process_that_outlives_its_patience_is_killed_and_reported_with_its_output() {
        let dir = Scratch::new("hung");
        let mut process =
            shell(&dir, "stuck", "echo last words >&2; sleep 600").with_patience(Duration::ZERO);
        crate::wait_until("the last words", crate::PATIENCE, || {
            process.stderr_tail(1) == "last words"
        });
        let panic =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| process.wait_blocking()))
                .expect_err("the wait gives up");
        let message = panic
            .downcast_ref::<String>()
            .expect("a formatted panic message");
        assert!(
            message.starts_with("stuck did not exit within"),
            "{message}"
        );
        assert!(message.contains("last words"), "{message}");
        assert!(
            process.try_wait().is_some(),
            "the stuck process was killed and reaped"
        );
    }
}
