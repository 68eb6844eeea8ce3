//! First-start set-up: the account and the first admin API token.

use portico_core::domain::account::{
    self, ACCOUNT_STREAM, AccountId, AccountState, ApiTokenCreated, ApiTokenState, TokenScope,
    api_token_stream,
};
use portico_core::{Actor, EventLog, EventMetadata, ExpectedVersion, NewEvent};

use crate::token::{self, NewToken};

/// The environment variable that sets the bootstrap admin token.
pub const ADMIN_TOKEN_ENV: &str = "PORTICO_ADMIN_TOKEN";

/// What start-up found or created.
#[derive(Debug)]
pub struct Bootstrapped {
    pub account_id: AccountId,
    pub account_created: bool,
    /// A token created now that must be shown once (not when it came from the environment).
    pub new_admin_token: Option<NewToken>,
}

fn system() -> EventMetadata {
    EventMetadata::new(Actor::system("bootstrap"))
}

/// Creates the account on first start (with `configured` as its id, if given), and the first
/// admin token; makes sure a token given in `PORTICO_ADMIN_TOKEN` exists.
pub async fn bootstrap(
    log: &dyn EventLog,
    configured: Option<&str>,
    admin_token: Option<&str>,
) -> anyhow::Result<Bootstrapped> {
    let mut state = AccountState::default();
    for event in log.read_stream(ACCOUNT_STREAM, 1, 16).await? {
        state.apply(&event.event);
    }
    let configured = configured.map(AccountId::parse).transpose()?;
    let (account_id, account_created) = match (state.account_id, configured) {
        (Some(existing), Some(wanted)) if existing != wanted => anyhow::bail!(
            "the configured account id `{wanted}` differs from this data's account `{existing}`"
        ),
        (Some(existing), _) => (existing, false),
        (None, wanted) => {
            let id = match wanted {
                Some(id) => id,
                None => {
                    let mut bytes = [0u8; 16];
                    getrandom::getrandom(&mut bytes)?;
                    AccountId::parse(hex::encode(bytes))?
                }
            };
            let events = account::decide_create_account(&AccountState::default(), id.clone())?;
            let events = events.into_iter().map(NewEvent::new).collect();
            match log.append(ACCOUNT_STREAM, ExpectedVersion::NoStream, events, &system()).await {
                Ok(_) => (id, true),
                // Another instance created it at the same moment: use theirs.
                Err(portico_core::AppendError::Conflict { .. }) => {
                    let mut state = AccountState::default();
                    for event in log.read_stream(ACCOUNT_STREAM, 1, 16).await? {
                        state.apply(&event.event);
                    }
                    let id = state
                        .account_id
                        .ok_or_else(|| anyhow::anyhow!("account stream without account"))?;
                    (id, false)
                }
                Err(e) => return Err(e.into()),
            }
        }
    };

    let new_admin_token = match admin_token {
        Some(given) => {
            let adopted =
                token::adopt(given).map_err(|e| anyhow::anyhow!("{ADMIN_TOKEN_ENV}: {e}"))?;
            ensure_token(log, &adopted, "admin (from PORTICO_ADMIN_TOKEN)").await?;
            None
        }
        None if account_created => {
            let generated = token::generate()?;
            create_token(log, &generated, "admin", TokenScope::Edit, Actor::system("bootstrap"))
                .await?;
            Some(generated)
        }
        None => None,
    };
    Ok(Bootstrapped { account_id, account_created, new_admin_token })
}

async fn ensure_token(log: &dyn EventLog, token: &NewToken, name: &str) -> anyhow::Result<()> {
    let stream = api_token_stream(&token.token_id);
    let existing = log.read_stream(&stream, 1, 16).await?;
    let matches = existing.iter().any(|e| {
        matches!(&e.event, portico_core::Event::ApiTokenCreated(t) if token::hashes_match(&t.secret_hash, &token.hash))
    });
    if matches {
        return Ok(());
    }
    if !existing.is_empty() {
        anyhow::bail!(
            "{ADMIN_TOKEN_ENV}: another token with the id `{}` exists; choose a token with other first 8 characters",
            token.token_id
        );
    }
    create_token(log, token, name, TokenScope::Edit, Actor::system("bootstrap")).await
}

/// Appends the creation of `token`.
pub async fn create_token(
    log: &dyn EventLog,
    token: &NewToken,
    name: &str,
    scope: TokenScope,
    actor: Actor,
) -> anyhow::Result<()> {
    let events = account::decide_create_token(
        &ApiTokenState::default(),
        ApiTokenCreated {
            token_id: token.token_id.clone(),
            name: name.to_owned(),
            scope,
            secret_hash: token.hash.clone(),
        },
    )?;
    let events = events.into_iter().map(NewEvent::new).collect();
    log.append(
        &api_token_stream(&token.token_id),
        ExpectedVersion::NoStream,
        events,
        &EventMetadata::new(actor),
    )
    .await?;
    Ok(())
}

/// Appends the revocation of API token `id`.
pub async fn revoke_token(log: &dyn EventLog, id: &str, actor: Actor) -> anyhow::Result<()> {
    let stream = api_token_stream(id);
    let mut state = ApiTokenState::default();
    for e in log.read_stream(&stream, 1, 16).await? {
        state.apply(&e.event);
    }
    let events = account::decide_revoke_token(&state, id)?;
    let expected = ExpectedVersion::Exact(state.stream_version);
    let events = events.into_iter().map(NewEvent::new).collect();
    log.append(&stream, expected, events, &EventMetadata::new(actor)).await?;
    Ok(())
}
