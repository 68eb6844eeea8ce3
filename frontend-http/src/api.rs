//! The admin API under `/client/v4`, wire-compatible with Cloudflare's API for MCP portals and
//! servers.

pub mod access_apps;
pub mod audit_logs;
pub mod authorize;
pub mod body;
pub mod cedar;
pub mod envelope;
pub mod error;
pub mod identity_providers;
pub mod logpush_jobs;
pub mod oauth_clients;
pub mod openapi;
pub mod portal_logs;
pub mod portals;
pub mod servers;
pub mod service_tokens;
pub mod users;

use actix_web::web;
use chrono::{DateTime, SecondsFormat, Utc};
use portico_core::Actor;
use portico_core::domain::DomainError;

use error::ApiError;

/// Registers the admin API's routes on a `/client/v4` scope.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let mcp = "/accounts/{account_id}/access/ai-controls/mcp";
    cfg.service(
        web::resource(format!("{mcp}/servers"))
            .route(web::get().to(servers::list))
            .route(web::post().to(servers::create)),
    )
    .service(
        web::resource(format!("{mcp}/servers/{{id}}"))
            .route(web::get().to(servers::read))
            .route(web::put().to(servers::update))
            .route(web::delete().to(servers::delete)),
    )
    .service(
        web::resource(format!("{mcp}/servers/{{id}}/sync")).route(web::post().to(servers::sync)),
    )
    .service(
        web::resource(format!("{mcp}/servers/{{id}}/authorize"))
            .route(web::post().to(servers::authorize)),
    )
    .service(
        web::resource(format!("{mcp}/portals"))
            .route(web::get().to(portals::list))
            .route(web::post().to(portals::create)),
    )
    .route(format!("{mcp}/portals/{{id}}/logs").as_str(), web::get().to(portal_logs::logs))
    .route(
        format!("{mcp}/portals/{{id}}/analytics").as_str(),
        web::get().to(portal_logs::analytics),
    )
    .service(
        web::resource(format!("{mcp}/portals/{{id}}"))
            .route(web::get().to(portals::read))
            .route(web::put().to(portals::update))
            .route(web::delete().to(portals::delete)),
    )
    .configure(service_tokens::routes)
    .configure(identity_providers::routes)
    .configure(access_apps::routes)
    .configure(logpush_jobs::routes)
    .configure(cedar::routes)
    .configure(authorize::routes)
    .configure(users::routes)
    .configure(oauth_clients::routes)
    .route("/accounts/{account_id}/audit_logs", web::get().to(audit_logs::list))
    .route("/openapi.json", web::get().to(openapi::serve));
}

/// Parses an id from a path or body, naming `what` in the error.
pub(crate) fn parse_id<T>(value: &str, what: &str) -> Result<T, ApiError>
where
    T: TryFrom<String, Error = DomainError>,
{
    T::try_from(value.to_owned()).map_err(|e| match e {
        DomainError::InvalidField { message, .. } => {
            ApiError::field(what, format!("invalid `{what}`: {message}"))
        }
        other => other.into(),
    })
}

/// Times as Cloudflare writes them: RFC 3339 in UTC with a `Z`.
pub fn rfc3339_pub(t: DateTime<Utc>) -> String {
    rfc3339(t)
}

pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The `created_by`/`modified_by` text of an actor.
pub fn actor_name(actor: &Actor) -> String {
    match actor {
        Actor::User { email, .. } => email.clone(),
        Actor::ApiToken { id, name } => format!("api-token:{id} ({name})"),
        Actor::ServiceToken { id } => format!("service-token:{id}"),
        Actor::System { component } => format!("portico:{component}"),
    }
}
