//! Child processes: the workspace's binaries, found beside the test executable, each with its
//! standard output and error in files of the test's directory.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The workspace binary `name`, built into the same target directory as the running test
/// (`target/<profile>/deps/<test>` → `target/<profile>/<name>`).
#[must_use]
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the path of the running test");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{name} is not built beside the tests ({}): build the workspace's binaries first \
         (`cargo build --workspace --bins`; the README test command does)",
        path.display()
    );
    path
}

/// A running child process.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Process {
    /// Starts `program` with `args` and the extra environment `env`; its output goes to
    /// `<dir>/<name>.stdout` and `<dir>/<name>.stderr`.
    #[must_use]
    pub fn spawn(
        dir: &Path,
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(&str, String)],
    ) -> Self {
        let stdout = dir.join(format!("{name}.stdout"));
        let stderr = dir.join(format!("{name}.stderr"));
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("create a stdout file"))
            .stderr(File::create(&stderr).expect("create a stderr file"));
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
        }
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

    /// SIGKILL: no clean shutdown, no goodbye to the broker; then reaps it.
    pub fn kill9(&mut self) {
        self.child
            .kill()
            .unwrap_or_else(|error| panic!("SIGKILL {}: {error}", self.name));
        self.child
            .wait()
            .unwrap_or_else(|error| panic!("reaping {}: {error}", self.name));
    }

    /// SIGTERM (a clean stop), then waits for the exit.
    pub async fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM {} failed", self.name);
        self.wait().await
    }

    /// Waits for the exit; kills the process and panics with its output after
    /// [`crate::PATIENCE`].
    pub async fn wait(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            if start.elapsed() > crate::PATIENCE {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{} did not exit within {:?}\n--- stderr (tail)\n{}",
                    self.name,
                    crate::PATIENCE,
                    self.stderr_tail(60)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Everything written to standard output so far.
    #[must_use]
    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// The last `lines` lines written to standard error.
    #[must_use]
    pub fn stderr_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.stderr).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
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
