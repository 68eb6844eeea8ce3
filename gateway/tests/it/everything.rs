//! Spawning `@modelcontextprotocol/server-everything` on a free port.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running server-everything, killed on drop.
pub struct Everything {
    child: Child,
    pub port: u16,
}

impl Drop for Everything {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mode` is `streamableHttp` (endpoint `/mcp`) or `sse` (endpoint `/sse`, posts to
/// `/message`). `None`, with a notice, when `PORTICO_TEST_SERVER_EVERYTHING` is unset.
pub async fn start(mode: &str) -> Option<Everything> {
    let Ok(bin) = std::env::var("PORTICO_TEST_SERVER_EVERYTHING") else {
        eprintln!(
            "skipping: set PORTICO_TEST_SERVER_EVERYTHING to the mcp-server-everything bin script"
        );
        return None;
    };
    let port = free_port();
    let child = Command::new("node")
        .arg(&bin)
        .arg(mode)
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `node {bin} {mode}`: {e}"));
    let server = Everything { child, port };
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "server-everything ({mode}) did not listen on {port}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Some(server)
}

/// A port nothing listens on (just released by the OS).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
