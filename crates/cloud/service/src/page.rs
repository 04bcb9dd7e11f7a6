//! Keyset pagination: pages ordered by ID (UUIDv7, so creation order), continued by an opaque
//! token that encodes the last ID seen. Stateless: any replica can serve the next page.

use crate::error::ApiError;
use base64ct::{Base64UrlUnpadded, Encoding};
use ferro_wire::{DEFAULT_PAGE_LIMIT, ErrorCode, MAX_PAGE_LIMIT, Page};

/// A validated page request.
#[derive(Debug, Clone)]
pub struct PageReq {
    /// Items wanted.
    pub limit: i64,
    /// Return IDs strictly greater than this ("" for the first page).
    pub after: String,
}

impl PageReq {
    /// Validate `limit` and decode `continuation`.
    pub fn new(limit: Option<u32>, continuation: Option<&str>) -> Result<PageReq, ApiError> {
        let limit = limit.unwrap_or(DEFAULT_PAGE_LIMIT);
        if !(1..=MAX_PAGE_LIMIT).contains(&limit) {
            return Err(ApiError::new(
                ErrorCode::InvalidQuery,
                format!("`limit` must be 1 to {MAX_PAGE_LIMIT}"),
            ));
        }
        let after = match continuation {
            None => String::new(),
            Some(tok) => Base64UrlUnpadded::decode_vec(tok)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .filter(|s| uuid::Uuid::parse_str(s).is_ok())
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::InvalidQuery,
                        "`continuation` is not a token this API issued; pass the previous \
                         page's `continuationToken` unchanged",
                    )
                })?,
        };
        Ok(PageReq {
            limit: i64::from(limit),
            after,
        })
    }

    /// The LIMIT to query: one more than wanted, to know whether another page exists.
    pub fn fetch(&self) -> i64 {
        self.limit + 1
    }

    /// Build the page from up to `fetch()` items, `id` giving each item's sort key.
    pub fn finish<T>(&self, mut items: Vec<T>, id: impl Fn(&T) -> String) -> Page<T> {
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        let continuation_token = if items.len() > limit {
            items.truncate(limit);
            items
                .last()
                .map(|last| Base64UrlUnpadded::encode_string(id(last).as_bytes()))
        } else {
            None
        };
        Page {
            items,
            continuation_token,
        }
    }
}

/// Drop the row IDs a page was keyed by.
pub(crate) fn strip_row_ids<T>(p: Page<(String, T)>) -> Page<T> {
    Page {
        items: p.items.into_iter().map(|x| x.1).collect(),
        continuation_token: p.continuation_token,
    }
}
