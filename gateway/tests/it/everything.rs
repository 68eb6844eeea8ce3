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

/// A peer's path from `variable`, as `scripts/test` exports it after installing `tests/peers`.
/// Without it the test fails, naming the variable, unless `PORTICO_SKIP_PEERS=1` says to skip
/// the tests that need the peers: then `None`, and the test says it was skipped.
pub fn peer(variable: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(path) if !path.is_empty() => Some(path),
        _ if std::env::var("PORTICO_SKIP_PEERS").as_deref() == Ok("1") => {
            eprintln!("skipped: PORTICO_SKIP_PEERS=1 ({variable} is not set)");
            None
        }
        _ => panic!(
            "{variable} is not set: run `scripts/test`, which installs the MCP peers of \
             tests/peers and sets it, or set PORTICO_SKIP_PEERS=1 to skip the tests that need them"
        ),
    }
}

/// `mode` is `streamableHttp` (endpoint `/mcp`) or `sse` (endpoint `/sse`, posts to
/// `/message`). `None` only when the peers are skipped (see [`peer`]). Runs on
/// `PORTICO_NODE22` when it is set, else on the `node` of the `PATH`.
pub async fn start(mode: &str) -> Option<Everything> {
    let bin = peer("PORTICO_TEST_SERVER_EVERYTHING")?;
    let node = std::env::var("PORTICO_NODE22").unwrap_or_else(|_| "node".to_owned());
    let port = free_port();
    let child = Command::new(&node)
        .arg(&bin)
        .arg(mode)
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{node} {bin} {mode}`: {e}"));
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
