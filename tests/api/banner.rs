//! `serve --sandbox` as a newcomer runs it: the banner's commands, pasted as printed, work.

use std::process::Command;

use crate::serve;

#[test]
fn the_banners_commands_work_pasted_as_printed() {
    let dir = tempfile::tempdir().expect("dir");
    let (_serve, banner) = serve::start(dir.path(), &[]);
    let commands: Vec<String> = banner
        .into_iter()
        .filter(|l| {
            l.starts_with("export TOKEN=") || l.starts_with("curl ") || l.contains(" sandbox-call ")
        })
        .collect();
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
