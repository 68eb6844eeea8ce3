//! A tiny HTTP/1.1 listener: records each request head and answers a fixed response.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The recorded requests: the head lowercased, then the body as sent.
pub type Heads = Arc<Mutex<Vec<String>>>;

/// Listens on 127.0.0.1 and answers every request with `response_head` (status line and
/// headers, without the final blank line) and an empty body, closing each connection.
pub async fn serve(response_head: String) -> (u16, Heads) {
    let (port, heads, _) = serve_with(response_head, false).await;
    (port, heads)
}

/// As [`serve`]; with `keep_alive` each connection serves requests until the client closes
/// it. Also returns the number of connections accepted.
pub async fn serve_with(response_head: String, keep_alive: bool) -> (u16, Heads, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let heads: Heads = Arc::default();
    let accepted = Arc::new(AtomicUsize::new(0));
    let (recorded, counter) = (heads.clone(), accepted.clone());
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let response =
        format!("{response_head}\r\ncontent-length: 0\r\nconnection: {connection}\r\n\r\n");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let (recorded, response) = (recorded.clone(), response.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while let Some(head) = read_request(&mut socket, &mut buf).await {
                    recorded.lock().unwrap().push(head);
                    if socket.write_all(response.as_bytes()).await.is_err() || !keep_alive {
                        break;
                    }
                }
                let _ = socket.shutdown().await;
            });
        }
    });
    (port, heads, accepted)
}

/// Reads one request (head and body, so closing never resets unread bytes) and returns its
/// head, lowercased, followed by its body; `None` when the client closed the connection.
async fn read_request(socket: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = socket.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = socket.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let end = (head_end + length).min(buf.len());
    let body = String::from_utf8_lossy(&buf[head_end..end]).into_owned();
    buf.drain(..end);
    Some(head + &body)
}

/// Listens on 127.0.0.1, accepts connections and never answers.
pub async fn silent() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    port
}
