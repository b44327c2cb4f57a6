//! A shutdown signal every task can wait on: a channel that closes.

#[derive(Clone)]
pub struct Shutdown {
    rx: async_channel::Receiver<()>,
}

/// Dropping (or calling [`Trigger::fire`] on) the trigger starts shutdown.
pub struct Trigger {
    tx: async_channel::Sender<()>,
}

impl Trigger {
    pub fn fire(&self) {
        self.tx.close();
    }
}

pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = async_channel::bounded(1);
    (Trigger { tx }, Shutdown { rx })
}

impl Shutdown {
    /// Resolves once shutdown has started.
    pub async fn wait(&self) {
        let _ = self.rx.recv().await;
    }

    pub fn is_set(&self) -> bool {
        self.rx.is_closed()
    }
}
