//! `portico portals`: measurements of a portal for its admins. `tokens` counts the tokens an
//! agent spends on the portal's `tools/list` in each context mode, with the `o200k_base`
//! tokenizer (GPT-4o and later): what `?optimize_context=` and `?codemode=` save.
//!
//! The count is of every tool of the portal's servers, as if every policy allowed it (a caller
//! sees at most that), from the synced catalog in the event log: the server need not run.

use std::borrow::Cow;
use std::collections::HashSet;

use anyhow::Context as _;
use clap::{Subcommand, ValueEnum};
use portico_core::domain::ids::PortalId;
use portico_gateway::context::ContextMode;
use portico_gateway::exposed::Exposed;
use portico_gateway::session::{BUILTINS, builtin_tools, tool_list};
use rmcp::model::{ListToolsResult, Tool};

use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum PortalsCommand {
    /// Tokens of a portal's `tools/list` in each context mode (o200k_base).
    Tokens {
        /// The portal's id.
        id: String,
        /// One mode only [default: every mode].
        #[arg(long, value_enum)]
        mode: Option<Mode>,
        /// One JSON object per mode instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// The context modes, as the portal URL's query names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// No query: every tool, fully described.
    Full,
    /// `?optimize_context=minimize_tools`.
    MinimizeTools,
    /// `?optimize_context=search_and_execute`.
    SearchAndExecute,
    /// `?codemode=search_and_execute`.
    Codemode,
}

impl Mode {
    fn context(self) -> ContextMode {
        match self {
            Mode::Full => ContextMode::Full,
            Mode::MinimizeTools => ContextMode::MinimizeTools,
            Mode::SearchAndExecute => ContextMode::SearchAndExecute,
            Mode::Codemode => ContextMode::CodeMode,
        }
    }
}

/// What one mode's `tools/list` costs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ListCost {
    pub mode: &'static str,
    /// Tools listed, built-ins included.
    pub tools: usize,
    /// Bytes of the answer's `result` (compact JSON, every page together).
    pub bytes: usize,
    /// Its tokens.
    pub tokens: usize,
}

pub async fn run(config: Config, command: PortalsCommand) -> anyhow::Result<()> {
    let PortalsCommand::Tokens { id, mode, json } = command;
    let portal_id = PortalId::parse(&id).map_err(|e| anyhow::anyhow!("portal id: {e}"))?;
    let storage = super::open_existing(&config).await?;
    let models = super::current_models(&storage).await?;
    let models = models.read();
    let view = models
        .portal(&portal_id)
        .with_context(|| format!("there is no portal `{id}` in {}", storage.description))?;
    let exposed = Exposed::unfiltered(&view, &models, &BUILTINS);
    let bpe = tiktoken_rs::o200k_base().context("the o200k_base tokenizer did not load")?;
    let modes = match mode {
        Some(mode) => vec![mode],
        None => Mode::value_variants().to_vec(),
    };
    let costs: Vec<ListCost> = modes
        .into_iter()
        .map(|mode| list_cost(mode, &exposed, |text| bpe.encode_ordinary(text).len()))
        .collect::<anyhow::Result<_>>()?;
    if json {
        for cost in &costs {
            println!("{}", serde_json::to_string(cost)?);
        }
    } else {
        println!("{:<20} {:>7} {:>11} {:>9}", "MODE", "TOOLS", "BYTES", "TOKENS");
        for cost in &costs {
            println!("{:<20} {:>7} {:>11} {:>9}", cost.mode, cost.tools, cost.bytes, cost.tokens);
        }
    }
    Ok(())
}

/// The cost of `mode`'s whole tool list, with `count` giving a text's tokens.
pub fn list_cost(
    mode: Mode,
    exposed: &Exposed,
    count: impl Fn(&str) -> usize,
) -> anyhow::Result<ListCost> {
    let context = mode.context();
    let off = HashSet::new();
    let builtins = builtin_tools(context, exposed, &off);
    let tools: Vec<Tool> =
        tool_list(context, &builtins, exposed, &off).map(Cow::into_owned).collect();
    let listed = tools.len();
    let text = serde_json::to_string(&ListToolsResult::with_all_items(tools))?;
    Ok(ListCost { mode: context.as_str(), tools: listed, bytes: text.len(), tokens: count(&text) })
}
