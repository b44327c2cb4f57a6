//! The dashboard's files, compiled into the binary (`dashboard/`, compressed by
//! `build.rs`): served from memory on the `http` thread, gzip when the client accepts
//! it (else as they are), with an ETag and `Cache-Control: no-cache`, so a browser
//! revalidates each time and gets `304 Not Modified` while the binary is the same.

use std::borrow::Cow;

use super::request::Conditions;
use super::response::Response;

/// One file: both encodings and their ETags, all made at build time. Guarantees the
/// two bodies are the same content (the gzip one decompresses to `identity`), so one
/// content hash validates either.
#[derive(Debug)]
pub(crate) struct Asset {
    pub content_type: &'static str,
    pub identity: &'static [u8],
    pub gzip: &'static [u8],
    /// A hash of the content, quoted, for the identity body...
    pub etag: &'static str,
    /// ...and for the gzip one (a representation of its own, as RFC 9110 asks).
    pub etag_gzip: &'static str,
}

// `INDEX_HTML`, `APP_JS`, `CHART_JS`, `APP_CSS`: one static per file of `build.rs`'s list.
include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// Whether `If-None-Match` names either of the asset's tags (or is `*`).
fn matches(if_none_match: &str, asset: &Asset) -> bool {
    if_none_match.split(',').map(str::trim).any(|tag| {
        let tag = tag.strip_prefix("W/").unwrap_or(tag);
        tag == "*" || tag == asset.etag || tag == asset.etag_gzip
    })
}

/// The response for `asset`: 304 when the client's copy is current, else the body in
/// the encoding the client accepts.
pub(crate) fn serve(asset: &'static Asset, conditions: &Conditions) -> Response {
    let gzip = conditions.accept_gzip;
    let etag = if gzip { asset.etag_gzip } else { asset.etag };
    let mut headers = vec![
        ("ETag", etag.to_string()),
        ("Cache-Control", "no-cache".to_string()),
        ("Vary", "Accept-Encoding".to_string()),
    ];
    let fresh = conditions
        .if_none_match
        .as_deref()
        .is_some_and(|v| matches(v, asset));
    let body = if fresh {
        &[][..]
    } else if gzip {
        headers.push(("Content-Encoding", "gzip".to_string()));
        asset.gzip
    } else {
        asset.identity
    };
    Response {
        code: if fresh { 304 } else { 200 },
        content_type: asset.content_type,
        body: Cow::Borrowed(body),
        headers,
        close: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_when_accepted_and_304_for_a_current_copy() {
        let plain = serve(&INDEX_HTML, &Conditions::default());
        assert_eq!(plain.code, 200);
        assert_eq!(&plain.body[..], INDEX_HTML.identity);
        assert!(std::str::from_utf8(&plain.body).unwrap().contains("<html"));
        let gz = Conditions {
            accept_gzip: true,
            ..Conditions::default()
        };
        let packed = serve(&INDEX_HTML, &gz);
        assert_eq!(&packed.body[..2], &[0x1f, 0x8b], "a gzip member");
        assert!(packed.body.len() < plain.body.len());
        assert!(
            packed
                .headers
                .contains(&("Content-Encoding", "gzip".into()))
        );
        let revalidate = |tag: &str, gzip: bool| {
            serve(
                &APP_JS,
                &Conditions {
                    accept_gzip: gzip,
                    if_none_match: Some(tag.into()),
                    ..Conditions::default()
                },
            )
        };
        let r = revalidate(APP_JS.etag, false);
        assert_eq!((r.code, r.body.len()), (304, 0));
        assert_eq!(revalidate(APP_JS.etag_gzip, true).code, 304);
        assert_eq!(revalidate(&format!("W/{}", APP_JS.etag), true).code, 304);
        assert_eq!(
            revalidate(APP_CSS.etag, false).code,
            200,
            "another file's tag"
        );
        assert_ne!(APP_JS.etag, APP_CSS.etag);
    }
}
