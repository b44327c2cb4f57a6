//! The commands run off the socket: a thread `openclaw-cmd` runs each invoke's command
//! (a tool, which may take seconds: `smollama.recall` asks for an embedding), so the
//! `openclaw` thread keeps reading ticks, answering pings and sending alerts meanwhile.
//! Commands run one at a time, in the order they came; at most `max_queued` wait (past
//! that the invoke is refused, counted by the caller). A finished command rings a
//! socket pair the `openclaw` thread polls.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;

use serde_json::Value as Json;

use super::commands::{Invoked, NodeCommands};

/// One invoke to run, and what its result needs to be sent back.
pub(crate) struct Job {
    /// The connection it came on: a result for an earlier one is not sent.
    pub session: u64,
    pub id: String,
    pub node_id: String,
    pub command: String,
    pub params: Json,
    pub key: String,
    pub timeout_ms: u64,
}

/// The command thread and its two channels. Dropping it lets the running command
/// finish and joins the thread (tools use the store, which closes after).
pub(crate) struct Worker {
    jobs: Option<SyncSender<Job>>,
    done: Receiver<(Job, Invoked)>,
    bell: UnixStream,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    pub(crate) fn start(
        commands: Arc<dyn NodeCommands>,
        max_queued: usize,
    ) -> Result<Worker, String> {
        let (jobs, jobs_rx) = std::sync::mpsc::sync_channel::<Job>(max_queued);
        let (done_tx, done) = std::sync::mpsc::channel();
        let (ring, bell) = UnixStream::pair().map_err(|e| format!("openclaw: {e}"))?;
        ring.set_nonblocking(true)
            .and_then(|()| bell.set_nonblocking(true))
            .map_err(|e| format!("openclaw: {e}"))?;
        let thread = std::thread::Builder::new()
            .name("openclaw-cmd".into())
            .spawn(move || {
                for job in jobs_rx {
                    let invoked = commands.invoke(&job.command, &job.params);
                    if done_tx.send((job, invoked)).is_err() {
                        return;
                    }
                    // A full pipe already rings.
                    let _ = (&ring).write(&[1]);
                }
            })
            .map_err(|e| format!("cannot start the openclaw-cmd thread: {e}"))?;
        Ok(Worker {
            jobs: Some(jobs),
            done,
            bell,
            thread: Some(thread),
        })
    }

    /// Queue `job`; handed back (`Some`) when `max_queued` are already waiting.
    pub(crate) fn submit(&self, job: Job) -> Option<Job> {
        let Some(jobs) = &self.jobs else {
            return Some(job);
        };
        match jobs.try_send(job) {
            Ok(()) => None,
            Err(TrySendError::Full(j) | TrySendError::Disconnected(j)) => Some(j),
        }
    }

    /// What to poll for finished commands.
    pub(crate) fn bell_fd(&self) -> RawFd {
        self.bell.as_raw_fd()
    }

    /// The commands finished since the last call, in order.
    pub(crate) fn finished(&self) -> Vec<(Job, Invoked)> {
        let mut b = [0u8; 64];
        while matches!((&self.bell).read(&mut b), Ok(n) if n > 0) {}
        self.done.try_iter().collect()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            log::error!("openclaw-cmd thread panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    /// A command that holds until the test lets it go.
    struct Gate(Mutex<std::sync::mpsc::Receiver<()>>);

    impl NodeCommands for Gate {
        fn invoke(&self, command: &str, _: &Json) -> Invoked {
            if command == "slow" {
                let _ = self.0.lock().unwrap().recv();
            }
            Invoked::Done(Ok(Json::String(command.into())))
        }
    }

    fn job(command: &str) -> Job {
        Job {
            session: 1,
            id: command.into(),
            node_id: "n".into(),
            command: command.into(),
            params: Json::Null,
            key: String::new(),
            timeout_ms: 1000,
        }
    }

    fn wait_bell(w: &Worker) {
        let mut fds = [libc::pollfd {
            fd: w.bell_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: one valid pollfd for the call.
        unsafe { libc::poll(fds.as_mut_ptr(), 1, 5000) };
    }

    #[test]
    fn a_slow_command_holds_neither_the_caller_nor_the_queue_bound() {
        let (release, gate) = std::sync::mpsc::channel();
        let w = Worker::start(Arc::new(Gate(Mutex::new(gate))), 1).unwrap();
        // Taken by the thread at once (it blocks in the command), then one may wait.
        assert!(w.submit(job("slow")).is_none(), "the first is taken");
        let mut queued = false;
        for _ in 0..100 {
            if w.submit(job("fast")).is_none() {
                queued = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(queued, "one waits behind the slow one");
        assert!(w.submit(job("more")).is_some(), "past max_queued: refused");
        assert!(
            w.finished().is_empty(),
            "nothing finished while the slow one runs"
        );
        release.send(()).unwrap();
        let mut got = Vec::new();
        while got.len() < 2 {
            wait_bell(&w);
            got.extend(w.finished().into_iter().map(|(j, _)| j.id));
        }
        assert_eq!(got, ["slow", "fast"], "in the order they came");
    }
}
