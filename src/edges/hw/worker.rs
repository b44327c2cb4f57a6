//! The `hw` thread: blocking hardware work (bus transactions, a DS18B20's 750 ms
//! conversion, an HC-SR04's echo) run one job at a time off the event loop. Started on
//! first use, so a node with no hardware has no such thread.

use std::sync::OnceLock;

type Job = Box<dyn FnOnce() + Send>;

/// Jobs waiting for the thread; a source submitting more waits (backpressure).
const QUEUE: usize = 16;

/// A handle to the `hw` thread. Cloning is cheap; the thread ends when every handle is gone.
#[derive(Clone)]
pub struct Worker {
    tx: async_channel::Sender<Job>,
}

impl Worker {
    fn start() -> Worker {
        let (tx, rx) = async_channel::bounded::<Job>(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("hw".into())
            .spawn(move || {
                while let Ok(job) = rx.recv_blocking() {
                    // A driver that panics fails its own job (the caller sees `None`),
                    // not every other device's.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            });
        if let Err(e) = spawned {
            log::error!("hardware: cannot start the hw thread: {e}");
        }
        Worker { tx }
    }

    /// Run `f` on the `hw` thread and wait for its result without blocking the loop.
    /// `None` if the job panicked or the thread is gone.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = async_channel::bounded(1);
        let job: Job = Box::new(move || {
            let _ = tx.try_send(f());
        });
        self.tx.send(job).await.ok()?;
        rx.recv().await.ok()
    }
}

/// The worker, started the first time it is asked for.
#[derive(Default)]
pub struct LazyWorker(OnceLock<Worker>);

impl LazyWorker {
    pub fn get(&self) -> Worker {
        self.0.get_or_init(Worker::start).clone()
    }

    pub fn started(&self) -> bool {
        self.0.get().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_off_the_caller_and_a_panic_fails_only_its_own() {
        let w = LazyWorker::default();
        assert!(!w.started());
        let w = w.get();
        let name = smol::block_on(w.run(|| std::thread::current().name().map(String::from)));
        assert_eq!(name, Some(Some("hw".to_string())));
        let panicked: Option<u8> = smol::block_on(w.run(|| panic!("driver bug")));
        assert_eq!(panicked, None);
        assert_eq!(smol::block_on(w.run(|| 2 + 2)), Some(4));
    }
}
