//! Portico's HTTP front end: the admin API (`/client/v4`), the portals' MCP endpoint, their
//! OAuth authorization server and sign-in pages, and the health endpoints. This is the only crate that knows HTTP status codes; every write goes
//! through the application layer (`portico-app`).

pub mod api;
pub mod auth;
pub mod health;
pub mod mcp;
pub mod metrics;
pub mod oauth;
pub mod pages;
pub mod state;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, HttpRequest, HttpResponse, web};

use api::error::{ApiError, Code};
use state::AppState;

/// Builds the application: `main` and the tests both call it.
pub fn create_app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .wrap_fn(|req, srv| {
            use actix_web::dev::Service;
            let started = std::time::Instant::now();
            let method = req.method().clone();
            // The path only: query strings may carry search terms users consider private.
            let path = req.path().to_owned();
            let response = srv.call(req);
            async move {
                let response = response.await?;
                let route = response.request().match_pattern();
                metrics::record_request(
                    &method,
                    route.as_deref(),
                    response.status().as_u16(),
                    started,
                );
                tracing::info!(
                    %method,
                    path = %path,
                    status = response.status().as_u16(),
                    elapsed_us = started.elapsed().as_micros() as u64,
                    "request"
                );
                Ok(response)
            }
        })
        .configure(|cfg| mcp::routes(cfg, &state.mcp))
        .configure(|cfg| {
            if let Some(extra) = &state.extra_routes {
                extra(cfg);
            }
        })
        .app_data(web::Data::new(state))
        .app_data(web::Data::new(metrics::Metrics::global()))
        .app_data(web::PayloadConfig::new(api::body::MAX_BODY_BYTES))
        .app_data(web::QueryConfig::default().error_handler(api::body::query_error))
        .app_data(web::PathConfig::default().error_handler(api::body::path_error))
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(metrics::render))
        // The admin API's scope before the portals' pages: actix tries routes in order, so
        // admin requests do not pay for matching the sign-in routes first.
        .service(web::scope("/client/v4").configure(api::routes).default_service(web::to(no_route)))
        .configure(oauth::routes)
        .configure(pages::routes)
        .default_service(web::to(no_route))
}

async fn no_route(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        Code::NotFound,
        format!("no route for {} {}", req.method(), state::truncate(req.path())),
    ))
}
