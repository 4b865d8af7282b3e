//! `serve --sandbox` as a newcomer runs it: the banner's commands, pasted as printed, work.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Stops the gateway process when the test ends, however it ends.
struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_banners_commands_work_pasted_as_printed() {
    let dir = tempfile::tempdir().expect("dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_axe-gateway"))
        .args(["serve", "--sandbox"])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("SANDBOX_LISTEN_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start serve --sandbox");
    let stdout = child.stdout.take().expect("stdout");
    let _serve = Serve(child);
    // The banner ends with the sandbox-call line.
    let mut commands = Vec::new();
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.expect("banner line");
        let line = line.trim();
        if line.starts_with("export TOKEN=") || line.starts_with("curl ") {
            commands.push(line.to_owned());
        }
        if line.contains(" sandbox-call ") {
            commands.push(line.to_owned());
            break;
        }
    }
    assert_eq!(
        commands.len(),
        3,
        "export, curl, sandbox-call: {commands:?}"
    );
    // The lines run in one shell, in order, exactly as printed.
    let script = commands.join("\n");
    let out = Command::new("sh")
        .args(["-e", "-c", &script])
        .current_dir(dir.path())
        .env_remove("TOKEN")
        .output()
        .expect("run the banner's commands");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script}\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // curl printed the created binding, sandbox-call the call it played to it.
    assert!(stdout.contains("\"order_id\":\"demo-1\""), "{stdout}");
    assert!(
        stdout.contains("\"all_delivered\": true"),
        "every notification of the call reached the gateway: {stdout}"
    );
}
