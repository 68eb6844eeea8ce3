//! Request bodies and query strings: bounded, strictly parsed, with errors that name the field.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use serde::de::DeserializeOwned;

use super::error::{ApiError, Code};

/// The largest request body accepted (a portal with 256 servers and their overrides fits).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON body. Unknown fields, wrong types and malformed JSON are 400s whose message names
/// the field (`servers[1].on_behalf: invalid type ...`); a body over [`MAX_BODY_BYTES`]
/// is a 400 too (code 10003).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = bytes.await.map_err(|e| {
                let overflow = matches!(
                    e.as_error::<actix_web::error::PayloadError>(),
                    Some(actix_web::error::PayloadError::Overflow)
                );
                if overflow {
                    ApiError::new(
                        Code::BodyTooLarge,
                        format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
                    )
                } else {
                    ApiError::new(Code::MalformedBody, format!("cannot read the request body: {e}"))
                }
            })?;
            parse(&bytes).map(JsonBody)
        })
    }
}

/// Parses JSON, reporting the path of the offending field.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::new(
            Code::MalformedBody,
            "the request body is empty; send a JSON object",
        ));
    }
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::new(
            Code::MalformedBody,
            "invalid request body: expected a JSON object",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let mut path = e.path().to_string();
        let inner = e.into_inner();
        // A missing field is reported on the object that lacks it; point at the field itself.
        let message = inner.to_string();
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split_once('`'))
            .map(|(field, _)| field.to_owned());
        if let Some(field) = missing {
            path = if path == "." { field } else { format!("{path}.{field}") };
            return ApiError::field(&path, format!("invalid `{path}`: is required"));
        }
        if inner.is_syntax() || inner.is_eof() {
            ApiError::new(
                Code::MalformedBody,
                format!("the request body is not valid JSON: {inner}"),
            )
        } else if path == "." {
            ApiError::new(Code::MalformedBody, format!("invalid request body: {inner}"))
        } else {
            ApiError::field(&path, format!("invalid `{path}`: {inner}"))
        }
    })?;
    de.end().map_err(|e| {
        ApiError::new(Code::MalformedBody, format!("the request body is not valid JSON: {e}"))
    })?;
    Ok(value)
}

/// Page-based paging and search, as Cloudflare's list endpoints take them.
#[derive(Debug, Clone, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page number, from 1.
    #[param(minimum = 1)]
    pub page: Option<u32>,
    /// Items per page: 1 to 1000, 20 by default.
    #[param(minimum = 1, maximum = 1000)]
    pub per_page: Option<u32>,
    /// Only items whose id or name (or, for portals, hostname) contains this text,
    /// case-insensitively; at most 200 characters.
    #[param(max_length = 200)]
    pub search: Option<String>,
}

/// The default page size.
pub const DEFAULT_PER_PAGE: u32 = 20;
/// The largest page size.
pub const MAX_PER_PAGE: u32 = 1000;
/// The longest search string.
pub const MAX_SEARCH_LEN: usize = 200;

impl ListQuery {
    /// `(page, per_page, search)` after bounds checks.
    pub fn resolve(&self) -> Result<(u32, u32, String), ApiError> {
        let page = self.page.unwrap_or(1);
        if page == 0 {
            return Err(ApiError::new(Code::InvalidQuery, "`page` starts at 1"));
        }
        let per_page = self.per_page.unwrap_or(DEFAULT_PER_PAGE);
        if !(1..=MAX_PER_PAGE).contains(&per_page) {
            return Err(ApiError::new(
                Code::InvalidQuery,
                format!("`per_page` must be between 1 and {MAX_PER_PAGE}"),
            ));
        }
        let search = self.search.clone().unwrap_or_default();
        if search.chars().count() > MAX_SEARCH_LEN {
            return Err(ApiError::new(
                Code::InvalidQuery,
                format!("`search` is longer than {MAX_SEARCH_LEN} characters"),
            ));
        }
        Ok((page, per_page, search))
    }
}

/// Takes one page of `items`.
pub fn paginate<T>(
    items: Vec<T>,
    page: u32,
    per_page: u32,
) -> (Vec<T>, super::envelope::ResultInfo) {
    let total_count = items.len();
    let per = per_page as usize;
    let start = (page as usize - 1).saturating_mul(per);
    let page_items: Vec<T> = items.into_iter().skip(start).take(per).collect();
    let info = super::envelope::ResultInfo {
        page,
        per_page,
        count: page_items.len(),
        total_count,
        total_pages: total_count.div_ceil(per),
    };
    (page_items, info)
}

/// The query-string error handler: a 400 in the envelope naming the problem.
pub fn query_error(
    err: actix_web::error::QueryPayloadError,
    _req: &HttpRequest,
) -> actix_web::Error {
    ApiError::new(Code::InvalidQuery, format!("invalid query string: {err}")).into()
}

/// The path error handler.
pub fn path_error(err: actix_web::error::PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::new(Code::NotFound, format!("invalid path: {err}")).into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Item {
        server_id: String,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        #[serde(default)]
        servers: Vec<Item>,
    }

    #[test]
    fn a_missing_field_is_named_with_its_path() {
        let err = parse::<Outer>(br#"{"servers": []}"#).unwrap_err();
        assert_eq!(err.pointer.as_deref(), Some("/name"));
        assert_eq!(err.message, "invalid `name`: is required");
        let err =
            parse::<Outer>(br#"{"name": "n", "servers": [{"server_id": "a"}, {}]}"#).unwrap_err();
        assert_eq!(err.pointer.as_deref(), Some("/servers/1/server_id"));
        assert_eq!(err.message, "invalid `servers[1].server_id`: is required");
    }
}
