//! The `portico` binary.

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    // No transparent huge pages for this process. Each MCP session holds a few tokio channels
    // whose first block (about 16 kB) is mostly never written; backed by 2 MiB pages they are
    // resident anyway, and 1,000 open sessions took 150 MB instead of 97 MB, with no gain in
    // throughput (benches/load/mcp.sh). mimalloc is built not to ask for them (`no_thp`); this
    // also covers hosts whose kernel gives them unasked (`transparent_hugepage=always`).
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::thread::disable_transparent_huge_pages(true) {
        eprintln!("portico: could not turn off transparent huge pages: {error}");
    }
    // One TLS provider for every outbound connection (upstream MCP servers): rustls on ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = portico::cli::Cli::parse();
    actix_web::rt::System::new().block_on(portico::cli::run(cli))
}
