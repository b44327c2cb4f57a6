//! The named threads that run blocking handlers, fed by bounded queues: `http-work`
//! (store reads, status; milliseconds) and `http-slow` (the recall embedding call, up to
//! 5 s, and GPIO writes; started by the first such request, so a node nobody asks to
//! recall or switch a pin has one thread less). A slow handler holds up at most the
//! requests queued behind it on its own lane; a full queue is answered 503 at once by
//! the server.

use std::sync::Arc;
use std::thread::JoinHandle;

use super::HttpView;
use super::request::Call;
use super::response::Response;
use super::routes::Blocking;

/// Requests that may wait for `http-slow`: each can take seconds, so a short queue
/// answers 503 rather than keep a client waiting behind many. (`http-work`'s queue holds
/// one request per connection, `[http] max_connections`: its handlers take milliseconds,
/// so a burst waits its turn rather than being refused.)
pub(crate) const SLOW_QUEUE: usize = 4;

/// One request for a worker: the handler, its input, and where the answer goes.
pub(crate) struct Job {
    pub handler: Blocking,
    pub call: Call,
    pub reply: async_channel::Sender<Response>,
}

/// The senders of both queues (held by the server; dropping them stops the workers).
pub(crate) struct Lanes {
    pub work: async_channel::Sender<Job>,
    slow: async_channel::Sender<Job>,
    /// `http-slow`'s queue and view until its first job starts it.
    slow_start: std::sync::Mutex<Option<(async_channel::Receiver<Job>, Arc<HttpView>)>>,
}

impl Lanes {
    /// `http-slow`'s queue, starting the thread the first time. Should it fail to start,
    /// jobs wait in the queue until it is full and the server answers 503.
    pub(crate) fn slow(&self) -> &async_channel::Sender<Job> {
        let mut start = self.slow_start.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((rx, view)) = start.take()
            && let Err(e) = spawn("http-slow", rx, view)
        {
            log::error!("http: cannot start http-slow: {e}");
        }
        &self.slow
    }
}

/// The worker threads, to wait for at shutdown (`http-slow`, started on demand, is not
/// joined: it may be inside a 5 s embedding call, and it only reads).
pub(crate) struct Workers {
    work: JoinHandle<()>,
}

impl Workers {
    /// Wait for `http-work` to finish its last job (the server has dropped the queues).
    pub(crate) fn stop(self) {
        let _ = self.work.join();
    }
}

pub(crate) fn start(view: &Arc<HttpView>) -> std::io::Result<(Lanes, Workers)> {
    // A connection has one request in flight at most, so this queue never refuses one.
    let work_queue = view.settings.http.max_connections.max(1) as usize;
    let (work_tx, work_rx) = async_channel::bounded(work_queue);
    let (slow_tx, slow_rx) = async_channel::bounded(SLOW_QUEUE);
    let work = spawn("http-work", work_rx, view.clone())?;
    Ok((
        Lanes {
            work: work_tx,
            slow: slow_tx,
            slow_start: std::sync::Mutex::new(Some((slow_rx, view.clone()))),
        },
        Workers { work },
    ))
}

fn spawn(
    name: &str,
    jobs: async_channel::Receiver<Job>,
    view: Arc<HttpView>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            while let Ok(job) = jobs.recv_blocking() {
                let response = (job.handler)(&view, &job.call).into_response();
                // The client may be gone (its connection closed meanwhile): nothing to do.
                let _ = job.reply.try_send(response);
            }
        })
}
