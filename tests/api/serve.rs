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
    let (serve, banner, _) = spawn(dir, env, false);
    (serve, banner)
}

/// The log lines the gateway has written to stderr so far.
pub type Logs = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// Like [`start`], and collects the gateway's log (its stderr) line by line.
pub fn start_logged(dir: &std::path::Path, env: &[(&str, &str)]) -> (Serve, Vec<String>, Logs) {
    spawn(dir, env, true)
}

fn spawn(dir: &std::path::Path, env: &[(&str, &str)], logged: bool) -> (Serve, Vec<String>, Logs) {
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
        .stderr(if logged {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .spawn()
        .expect("start serve --sandbox");
    let stdout = child.stdout.take().expect("stdout");
    let logs = Logs::default();
    if let Some(stderr) = child.stderr.take() {
        let logs = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                logs.lock().unwrap().push(line);
            }
        });
    }
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
    (serve, banner, logs)
}
