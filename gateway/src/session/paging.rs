//! Paging of list answers: opaque cursors over the caller's list.

use std::borrow::Cow;

use base64::Engine as _;
use rmcp::model::{ErrorData, PaginatedRequestParams};

use super::PAGE_SIZE;

/// Encodes a page offset as an opaque cursor.
pub(super) fn cursor(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("o{offset}"))
}

/// Decodes a cursor; an invalid one is `-32602`.
pub(super) fn offset(request: Option<&PaginatedRequestParams>) -> Result<usize, ErrorData> {
    let Some(cursor) = request.and_then(|r| r.cursor.as_deref()) else { return Ok(0) };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix('o')?.parse().ok())
        .ok_or_else(|| ErrorData::invalid_params("invalid cursor", None))
}

/// The page of `items` that starts at `start`, owning (cloning) only that page, and the cursor
/// of the next one.
pub(super) fn page<'a, T: Clone + 'a>(
    items: impl Iterator<Item = Cow<'a, T>>,
    start: usize,
) -> Result<(Vec<T>, Option<String>), ErrorData> {
    let mut items = items.skip(start).peekable();
    if start > 0 && items.peek().is_none() {
        return Err(ErrorData::invalid_params("invalid cursor", None));
    }
    let page: Vec<T> = items.by_ref().take(PAGE_SIZE).map(Cow::into_owned).collect();
    let next = items.peek().is_some().then(|| cursor(start + page.len()));
    Ok((page, next))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pages_walk_every_item_once_then_stop() {
        let items: Vec<usize> = (0..1_203).collect();
        let mut seen = Vec::new();
        let mut start = 0;
        loop {
            let (page, next) = page(items.iter().map(Cow::Borrowed), start).unwrap();
            assert!(page.len() <= PAGE_SIZE);
            seen.extend(page);
            let Some(next) = next else { break };
            let request = PaginatedRequestParams::default().with_cursor(Some(next));
            start = offset(Some(&request)).unwrap();
        }
        assert_eq!(seen, items);
    }

    #[test]
    fn a_bad_or_exhausted_cursor_is_invalid_params() {
        for cursor in ["not base64 !", "eDEy", &super::cursor(5_000)] {
            let request = PaginatedRequestParams::default().with_cursor(Some(cursor.to_owned()));
            let result = offset(Some(&request))
                .and_then(|start| page([1, 2, 3].iter().map(Cow::Borrowed), start));
            let error = result.unwrap_err();
            assert_eq!(error.code, rmcp::model::ErrorCode::INVALID_PARAMS, "{cursor}");
        }
        // No cursor: the first page, even of nothing.
        assert_eq!(
            page(std::iter::empty::<Cow<'_, u8>>(), offset(None).unwrap()).unwrap(),
            (Vec::new(), None)
        );
    }
}
