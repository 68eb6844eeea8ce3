//! Cloudflare's v4 response envelope: `{success, errors, messages, result, result_info?}`.
//!
//! Each answer of the API is a named type, declared with [`envelope!`] beside the resource it
//! carries: the handler serializes it and the OpenAPI document describes it, so the two cannot
//! drift apart. A failure is an [`ErrorEnvelope`], written by [`ApiError`](super::error::ApiError).

use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};

/// Paging information of a list answer.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct ResultInfo {
    /// The page number, from 1.
    pub page: u32,
    pub per_page: u32,
    /// Items on this page.
    pub count: usize,
    /// Items on all pages.
    pub total_count: usize,
    pub total_pages: usize,
}

/// An error or a message of the envelope.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ResponseInfo {
    /// A stable machine-readable code.
    pub code: u32,
    /// What went wrong, safe to show.
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub source: Option<ErrorSource>,
}

/// The field of the request body at fault.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorSource {
    /// A JSON pointer into the request body (`/servers/2/updated_tools/0/alias`).
    pub pointer: String,
    /// For a Cedar policy's text: the 1-based line of the problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub line: Option<u32>,
    /// For a Cedar policy's text: the 1-based column of the problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub column: Option<u32>,
}

fn null() -> impl Into<RefOr<Schema>> {
    ObjectBuilder::new().schema_type(Type::Null)
}

/// The answer to a request that failed: `success` is `false`, `errors` holds one error.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub success: bool,
    #[schema(min_items = 1)]
    pub errors: Vec<ResponseInfo>,
    pub messages: Vec<ResponseInfo>,
    #[schema(schema_with = null)]
    pub result: (),
}

impl ErrorEnvelope {
    /// The answer carrying `error`.
    pub fn new(error: ResponseInfo) -> Self {
        ErrorEnvelope { success: false, errors: vec![error], messages: Vec::new(), result: () }
    }
}

/// Declares the answer `$name`: the envelope of a success carrying `result` (and
/// `result_info`, for a page), with `$name::ok(result)` (or `$name::page(result, info)`) that
/// answers `200` with it.
macro_rules! envelope {
    ($(#[doc = $doc:literal])+ $name:ident { result: $result:ty }) => {
        $(#[doc = $doc])+
        #[derive(Debug, serde::Serialize, utoipa::ToSchema)]
        pub struct $name {
            /// `true`.
            pub success: bool,
            /// Empty.
            pub errors: Vec<$crate::api::envelope::ResponseInfo>,
            /// Empty.
            pub messages: Vec<$crate::api::envelope::ResponseInfo>,
            pub result: $result,
        }

        impl $name {
            /// `200` with `result`.
            pub fn ok(result: $result) -> actix_web::HttpResponse {
                actix_web::HttpResponse::Ok().json($name {
                    success: true,
                    errors: Vec::new(),
                    messages: Vec::new(),
                    result,
                })
            }
        }
    };
    ($(#[doc = $doc:literal])+ $name:ident { result: $result:ty, result_info: $info:ty }) => {
        $(#[doc = $doc])+
        #[derive(Debug, serde::Serialize, utoipa::ToSchema)]
        pub struct $name {
            /// `true`.
            pub success: bool,
            /// Empty.
            pub errors: Vec<$crate::api::envelope::ResponseInfo>,
            /// Empty.
            pub messages: Vec<$crate::api::envelope::ResponseInfo>,
            pub result: $result,
            pub result_info: $info,
        }

        impl $name {
            /// `200` with a page of results.
            pub fn page(result: $result, result_info: $info) -> actix_web::HttpResponse {
                actix_web::HttpResponse::Ok().json($name {
                    success: true,
                    errors: Vec::new(),
                    messages: Vec::new(),
                    result,
                    result_info,
                })
            }
        }
    };
}

pub(crate) use envelope;
