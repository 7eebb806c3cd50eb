//! Kubernetes-style paging of list requests: `?limit=N&continue=TOKEN`.
//!
//! One request answers at most [`MAX_PAGE`] objects ([`DEFAULT_PAGE`] without `limit`),
//! so a large store cannot make one answer (and the controller's memory for it) grow
//! without bound. When more remain, the list's `metadata.continue` holds a token; the
//! next request passes it back and gets the following objects, read at the same etcd
//! revision as the first page, so the pages together are one consistent snapshot. A
//! token whose revision etcd has compacted meanwhile answers 410 Gone: list again.
//!
//! The token is opaque to clients: `<revision>.<hex of the last key's namespace/name>`.

use axum::http::StatusCode;
use serde::Deserialize;

use crate::api::ApiError;
use crate::store::StoreError;

/// Objects per page without `limit`.
pub const DEFAULT_PAGE: usize = 500;
/// Most objects one page holds; a larger `limit` is lowered to it.
pub const MAX_PAGE: usize = 500;

/// The paging parameters of a list request.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct PageQuery {
    /// Page size (1 to [`MAX_PAGE`]; larger values are lowered).
    #[serde(default)]
    pub limit: Option<String>,
    /// Token from the previous page's `metadata.continue`.
    #[serde(default, rename = "continue")]
    pub continue_token: Option<String>,
}

/// Where a page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Most objects to answer.
    pub limit: usize,
    /// The snapshot revision to read at (none: now, for a first page).
    pub revision: Option<i64>,
    /// The page starts after this `<namespace>/<name>` (none: at the start).
    pub after: Option<String>,
}

impl PageQuery {
    /// The page asked for; 400 on a malformed limit or token, or a token of another
    /// namespace's list.
    pub fn page(&self, namespace: Option<&str>) -> Result<Page, ApiError> {
        let limit = match self.limit.as_deref().map(str::trim) {
            None | Some("") => DEFAULT_PAGE,
            Some(text) => match text.parse::<usize>() {
                Ok(n) if n >= 1 => n.min(MAX_PAGE),
                _ => {
                    return Err(bad(format!(
                        "limit {text:?} must be a positive number (pages hold at most {MAX_PAGE})"
                    )));
                }
            },
        };
        let (revision, after) = match self.continue_token.as_deref().filter(|t| !t.is_empty()) {
            None => (None, None),
            Some(token) => {
                let (revision, after) = decode_token(token).ok_or_else(|| {
                    bad(format!(
                        "continue token {token:?} is not one this API gave out; list again without it"
                    ))
                })?;
                if let Some(ns) = namespace
                    && after.split('/').next() != Some(ns)
                {
                    return Err(bad(format!(
                        "continue token {token:?} belongs to another namespace's list"
                    )));
                }
                (Some(revision), Some(after))
            }
        };
        Ok(Page {
            limit,
            revision,
            after,
        })
    }
}

fn bad(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
}

/// The token for a page that ended at `last` (`<namespace>/<name>`), read at `revision`.
pub fn encode_token(revision: i64, last: &str) -> String {
    format!("{revision}.{}", hex::encode(last.as_bytes()))
}

/// The revision and last `<namespace>/<name>` of a token.
pub fn decode_token(token: &str) -> Option<(i64, String)> {
    let (revision, key) = token.split_once('.')?;
    let revision = revision.parse::<i64>().ok().filter(|r| *r > 0)?;
    let key = String::from_utf8(hex::decode(key).ok()?).ok()?;
    let (ns, name) = key.split_once('/')?;
    let valid = |part: &str| {
        !part.is_empty()
            && part.len() <= concord_schemas::names::MAX_SUBDOMAIN_LEN
            && !part.contains(['/', '\0'])
    };
    (valid(ns) && valid(name)).then_some((revision, key))
}

/// Reads one page of the keys under `prefix` (`<root>/<ns>/` or `<root>/`): at most
/// `page.limit` keys after `<root>/<page.after>`, at `page.revision` (now, for a first
/// page). Returns the answer and the revision it was read at.
pub async fn read_keys(
    client: &mut etcd_client::Client,
    root: &str,
    prefix: &str,
    page: &Page,
) -> Result<(etcd_client::GetResponse, i64), StoreError> {
    let start = match &page.after {
        Some(after) => format!("{root}/{after}\0"),
        None => prefix.to_owned(),
    };
    let mut options = etcd_client::GetOptions::new()
        .with_range(prefix_end(prefix.as_bytes()))
        .with_limit(i64::try_from(page.limit).unwrap_or(i64::MAX));
    if let Some(revision) = page.revision {
        options = options.with_revision(revision);
    }
    let resp = client.get(start, Some(options)).await?;
    let revision = page
        .revision
        .unwrap_or_else(|| resp.header().map(|h| h.revision()).unwrap_or_default());
    Ok((resp, revision))
}

/// The smallest key after every key that starts with `prefix` (etcd's range end).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): to the end of the keyspace.
    vec![0]
}

/// A store error of a paged read: 410 Gone when the token's revision was compacted, 400
/// when it names a revision etcd has not reached (a forged token).
pub fn store_error(e: StoreError) -> ApiError {
    if let StoreError::Etcd(inner) = &e {
        let text = inner.to_string();
        if text.contains("compacted") {
            return ApiError::new(
                StatusCode::GONE,
                "Expired",
                format!(
                    "the continue token has expired (etcd compacted its revision): list again without it ({inner})"
                ),
            );
        }
        if text.contains("future revision") {
            return bad(format!(
                "the continue token names a revision etcd has not reached: list again without it ({inner})"
            ));
        }
    }
    e.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(limit: Option<&str>, token: Option<&str>) -> PageQuery {
        PageQuery {
            limit: limit.map(str::to_owned),
            continue_token: token.map(str::to_owned),
        }
    }

    #[test]
    fn limits_default_and_are_capped() {
        assert_eq!(
            query(None, None).page(None).ok().map(|p| p.limit),
            Some(DEFAULT_PAGE)
        );
        assert_eq!(
            query(Some("7"), None).page(None).ok().map(|p| p.limit),
            Some(7)
        );
        assert_eq!(
            query(Some("1000000"), None)
                .page(None)
                .ok()
                .map(|p| p.limit),
            Some(MAX_PAGE)
        );
        for bad in ["0", "-1", "lots", "99999999999999999999999"] {
            let err = query(Some(bad), None).page(None).expect_err(bad);
            assert!(
                format!("{err:?}").contains("must be a positive number"),
                "{err:?}"
            );
        }
    }

    #[test]
    fn tokens_round_trip_and_bad_ones_are_refused() {
        let token = encode_token(42, "prod/wordcount");
        assert_eq!(decode_token(&token), Some((42, "prod/wordcount".into())));
        let page = query(None, Some(&token))
            .page(Some("prod"))
            .expect("same namespace");
        assert_eq!(page.revision, Some(42));
        assert_eq!(page.after.as_deref(), Some("prod/wordcount"));
        assert!(query(None, Some(&token)).page(Some("dev")).is_err());
        for bad in [
            "garbage",
            "42",
            "0.70726f642f77",
            "x.70726f642f77",
            "42.zz",
            &encode_token(42, "no-slash"),
            &encode_token(42, "a/b/c"),
            &encode_token(42, "/b"),
        ] {
            assert!(decode_token(bad).is_none(), "{bad}");
            assert!(query(None, Some(bad)).page(None).is_err(), "{bad}");
        }
    }

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"/c/topologies/"), b"/c/topologies0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }
}
