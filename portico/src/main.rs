//! The `portico` binary.

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    // One TLS provider for every outbound connection (upstream MCP servers): rustls on ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = portico::cli::Cli::parse();
    actix_web::rt::System::new().block_on(portico::cli::run(cli))
}
