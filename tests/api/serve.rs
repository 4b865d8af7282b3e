//! The real binary, `serve --sandbox`, as a newcomer starts it: free ports, its own directory
//! (so its own SQLite file), and its banner read from stdout.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The gateway process; killed when dropped, however the test ends.
pub struct Serve(pub Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `serve --sandbox` in `dir` with `env` (and nothing else of the test's environment but
/// `PATH`), and returns it with its banner's lines, up to the `sandbox-call` line. The rest of
/// its stdout keeps being read, as a terminal would.
pub fn start(dir: &std::path::Path, env: &[(&str, &str)]) -> (Serve, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_axe-gateway"))
        .args(["serve", "--sandbox"])
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("SANDBOX_LISTEN_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start serve --sandbox");
    let stdout = child.stdout.take().expect("stdout");
    let serve = Serve(child);
    let mut banner = Vec::new();
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.expect("banner line");
        let line = line.trim().to_owned();
        let last = line.contains(" sandbox-call ");
        banner.push(line);
        if last {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    (serve, banner)
}
