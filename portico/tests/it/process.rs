//! The `portico` binary run as a process.

use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{ACCOUNT_ID, ADMIN_TOKEN};

/// `portico serve` turns transparent huge pages off for itself before anything else (each
/// session's mostly unwritten channel blocks would otherwise be resident in 2 MiB pages).
#[cfg(target_os = "linux")]
#[test]
fn serve_runs_without_transparent_huge_pages() {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_portico"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--listen", &listen, "--account-id", ACCOUNT_ID])
        .env("PORTICO_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Listening means `main` is well past its first statement.
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(&listen).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "portico serve exited before listening");
        assert!(Instant::now() < deadline, "portico serve did not listen on {listen}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let thp = status.lines().find_map(|line| line.strip_prefix("THP_enabled:"));
    assert_eq!(thp.map(str::trim), Some("0"), "{status}");
}
