//! Long-lived responses (Server-Sent Events): what a `Handler::Stream` route opens. The
//! connection's own task on the `http` thread writes it (`server.rs`), so a stream costs
//! its socket and a small state, never a thread and never a worker.

use std::future::Future;
use std::pin::Pin;

use super::HttpView;
use super::request::Call;
use super::response::Reply;

/// Opens a stream for a request, or answers it at once (400, 503, ...). Runs on the
/// `http` thread, so it must not block.
pub(crate) type Streaming = fn(&HttpView, &Call) -> Result<Box<dyn StreamBody>, Reply>;

/// A response body that goes on until the client leaves (or it ends). Guarantees, for
/// the server: `next` appends a bounded amount (one batch) per call and waits without
/// blocking the thread; what it holds between calls does not grow with time.
pub(crate) trait StreamBody {
    fn content_type(&self) -> &'static str;

    /// Append the next bytes to send to `out` (empty on entry), waiting as long as it
    /// takes (a keep-alive counts); `false` when the stream has ended.
    fn next<'a>(&'a mut self, out: &'a mut Vec<u8>) -> Pin<Box<dyn Future<Output = bool> + 'a>>;
}

/// The status line and headers of a stream's response: no length (the body ends when
/// the connection does, so `Connection: close`), never cached, and not buffered by a
/// proxy that honours `X-Accel-Buffering` (nginx).
pub(crate) fn head(content_type: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nDate: {}\r\nContent-Type: {content_type}\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\n",
        super::response::http_date(crate::clock::now_us())
    )
    .into_bytes()
}
