//! Cloudflare's v4 response envelope: `{success, errors, messages, result, result_info?}`.

use actix_web::HttpResponse;
use serde::Serialize;
use utoipa::ToSchema;

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

#[derive(Serialize)]
struct Envelope<T: Serialize, I: Serialize> {
    success: bool,
    errors: [(); 0],
    messages: [(); 0],
    result: T,
    #[serde(skip_serializing_if = "Option::is_none")]
    result_info: Option<I>,
}

/// `200` with `result`.
pub fn ok<T: Serialize>(result: T) -> HttpResponse {
    HttpResponse::Ok().json(Envelope::<T, ResultInfo> {
        success: true,
        errors: [],
        messages: [],
        result,
        result_info: None,
    })
}

/// `200` with a page of results.
pub fn page<T: Serialize>(result: Vec<T>, info: ResultInfo) -> HttpResponse {
    page_with(result, info)
}

/// `200` with a page of results and paging information of another shape than [`ResultInfo`].
pub fn page_with<T: Serialize, I: Serialize>(result: Vec<T>, info: I) -> HttpResponse {
    HttpResponse::Ok().json(Envelope {
        success: true,
        errors: [],
        messages: [],
        result,
        result_info: Some(info),
    })
}
