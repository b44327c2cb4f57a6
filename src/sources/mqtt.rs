//! The `mqtt` source: readings other nodes and devices publish, parsed by the MQTT
//! worker thread (see `edges::mqtt::connection`) and handed over through a bounded
//! channel. On the event loop this is only a forwarder.

use async_channel::Receiver;

use super::SourceCtx;
use crate::graph::Item;

pub struct MqttSource {
    rx: Receiver<Item>,
}

/// Readings waiting between the worker and this source; when full the oldest is dropped
/// (and counted against its source).
pub const QUEUE: usize = 256;

impl MqttSource {
    pub fn new(rx: Receiver<Item>) -> MqttSource {
        MqttSource { rx }
    }

    pub async fn run(self, ctx: SourceCtx) {
        loop {
            let next = smol::future::or(async { self.rx.recv().await.ok() }, async {
                ctx.shutdown.wait().await;
                None
            })
            .await;
            match next {
                Some(item) => ctx.out.send(item).await,
                None => return,
            }
        }
    }
}
