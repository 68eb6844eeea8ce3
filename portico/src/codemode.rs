//! Code mode's engine for `portico serve`: workerd when asked for or found, else QuickJS.

use std::sync::Arc;

use anyhow::Context as _;
use portico_codemode::quickjs::QuickJs;
use portico_codemode::workerd::{self, Workerd, WorkerdConfig};
use portico_codemode::{Limits, Sandbox};
use portico_gateway::{CodeModeConfig, DEFAULT_QUICKJS_CONCURRENCY};

use crate::config::EngineChoice;

/// Starts the engine `choice` names (`auto`: workerd when its binary is found).
pub async fn start(choice: EngineChoice, limits: Limits) -> anyhow::Result<CodeModeConfig> {
    let binary = match choice {
        EngineChoice::Quickjs => None,
        EngineChoice::Auto => workerd::find_binary(),
        EngineChoice::Workerd => Some(workerd::find_binary().context(
            "code mode's engine is `workerd`, but no workerd binary was found: set PORTICO_WORKERD to its path (npm package @cloudflare/workerd-linux-64, bin/workerd) or put `workerd` on the PATH",
        )?),
    };
    let sandbox: Arc<dyn Sandbox> = match binary {
        Some(binary) => {
            // One isolate's heap is the execution's memory limit: V8 has no other per-isolate
            // bound, and an isolate over it aborts its process (the supervisor restarts it).
            let config = WorkerdConfig {
                heap_bytes: limits.memory_bytes,
                ..WorkerdConfig::new(binary.clone())
            };
            let engine = Workerd::start(config).await.with_context(|| {
                format!("cannot start code mode's workerd engine (`{}`)", binary.display())
            })?;
            tracing::info!(binary = %binary.display(), "code mode runs in V8 isolates (workerd)");
            Arc::new(engine)
        }
        None => {
            tracing::info!("code mode runs in embedded QuickJS");
            Arc::new(QuickJs::new(DEFAULT_QUICKJS_CONCURRENCY))
        }
    };
    Ok(CodeModeConfig { sandbox, limits })
}
