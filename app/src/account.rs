//! First-start set-up: the account, the first admin API token and the built-in one-time PIN
//! identity provider.

use portico_core::Actor;
use portico_core::EventLog;
use portico_core::domain::account::{
    ACCOUNT_STREAM, AccountId, AccountState, CreateAccount, TokenScope, api_token_stream,
};

use crate::api_tokens::{self, NewToken};
use crate::{AppError, load};

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

/// Why start-up could not set up the account.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("the configured account id `{wanted}` differs from this data's account `{existing}`")]
    OtherAccount { wanted: AccountId, existing: AccountId },
    #[error("{ADMIN_TOKEN_ENV}: {0}")]
    AdminToken(String),
    #[error(transparent)]
    App(#[from] AppError),
}

fn bootstrap_actor() -> Actor {
    Actor::system("bootstrap")
}

/// Creates the account on first start (with `configured` as its id, if given), and the first
/// admin token; makes sure a token given in `PORTICO_ADMIN_TOKEN` exists.
pub async fn bootstrap(
    log: &dyn EventLog,
    configured: Option<AccountId>,
    admin_token: Option<&str>,
) -> Result<Bootstrapped, BootstrapError> {
    let state: AccountState = load(log, ACCOUNT_STREAM).await?;
    let (account_id, account_created) = match (state.account_id, configured) {
        (Some(existing), Some(wanted)) if existing != wanted => {
            return Err(BootstrapError::OtherAccount { wanted, existing });
        }
        (Some(existing), _) => (existing, false),
        (None, wanted) => {
            let id = match wanted {
                Some(id) => id,
                None => AccountId::parse(crate::random_hex::<16>()?).map_err(AppError::from)?,
            };
            let created = crate::execute_on_log::<AccountState>(
                log,
                ACCOUNT_STREAM,
                CreateAccount(id.clone()),
                &(),
                &bootstrap_actor(),
            )
            .await;
            match created {
                Ok(_) => (id, true),
                // Another instance created it at the same moment: use theirs.
                Err(AppError::Conflict(_)) => {
                    let state: AccountState = load(log, ACCOUNT_STREAM).await?;
                    let id = state
                        .account_id
                        .ok_or_else(|| AppError::internal("the account stream holds no account"))?;
                    (id, false)
                }
                Err(e) => return Err(e.into()),
            }
        }
    };

    let new_admin_token = match admin_token {
        Some(given) => {
            let adopted = api_tokens::adopt(given).map_err(BootstrapError::AdminToken)?;
            ensure_token(log, &adopted, "admin (from PORTICO_ADMIN_TOKEN)").await?;
            None
        }
        None if account_created => {
            let generated = api_tokens::generate().map_err(AppError::internal)?;
            api_tokens::create(log, &generated, "admin", TokenScope::Edit, &bootstrap_actor())
                .await?;
            Some(generated)
        }
        None => None,
    };
    // Every account can sign people in from the first start: the built-in one-time PIN
    // provider (created once; an admin may delete it for good).
    crate::identity_providers::ensure_one_time_pin(log, &bootstrap_actor()).await?;
    Ok(Bootstrapped { account_id, account_created, new_admin_token })
}

/// Creates `token` unless a token with its id and secret exists.
async fn ensure_token(
    log: &dyn EventLog,
    token: &NewToken,
    name: &str,
) -> Result<(), BootstrapError> {
    let existing =
        log.read_stream(&api_token_stream(&token.token_id), 1, 16).await.map_err(AppError::from)?;
    let matches = existing.iter().any(|e| {
        matches!(&e.event, portico_core::Event::ApiTokenCreated(t) if api_tokens::hashes_match(&t.secret_hash, &token.hash))
    });
    if matches {
        return Ok(());
    }
    if !existing.is_empty() {
        return Err(BootstrapError::AdminToken(format!(
            "another token with the id `{}` exists; choose a token with other first 8 characters",
            token.token_id
        )));
    }
    api_tokens::create(log, token, name, TokenScope::Edit, &bootstrap_actor()).await?;
    Ok(())
}
