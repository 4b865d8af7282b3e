//! The real binary, `serve --sandbox`, as a newcomer starts it: free ports, its own directory
//! (so its own SQLite file), and its banner read from stdout.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

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
    let (serve, banner, _) = start_with(dir, env, false, false);
    (serve, banner)
}

/// Everything a process wrote after its banner, stdout and stderr (its log) alike.
pub type Output = Arc<Mutex<String>>;

/// Like [`start`], and keeps everything the gateway writes after its banner, on stdout and on
/// stderr (its log), for the test to read.
pub fn start_recording(
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (Serve, Vec<String>, Output) {
    start_with(dir, env, true, true)
}

/// Like [`start`], and collects the gateway's log (its stderr) line by line.
pub fn start_logged(dir: &std::path::Path, env: &[(&str, &str)]) -> (Serve, Vec<String>, Logs) {
    let (serve, banner, output) = start_with(dir, env, true, false);
    (serve, banner, Logs(output))
}

/// The gateway's log lines so far.
pub struct Logs(Output);

impl Logs {
    pub fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .expect("output")
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

fn start_with(
    dir: &std::path::Path,
    env: &[(&str, &str)],
    record: bool,
    record_stdout: bool,
) -> (Serve, Vec<String>, Output) {
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
        .stderr(if record {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .spawn()
        .expect("start serve --sandbox");
    let output = Output::default();
    if let Some(mut stderr) = child.stderr.take() {
        let output = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = stderr.read(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                output.lock().expect("output").push_str(&text);
            }
        });
    }
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
    let kept = output.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if record_stdout {
                let mut out = kept.lock().expect("output");
                out.push_str(&line);
                out.push('\n');
            }
        }
    });
    (serve, banner, output)
}
