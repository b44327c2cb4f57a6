//! The display sinks' task (both kinds): the latest value of each id the template shows,
//! rendered when one of them changed, onto the display unless a tool write holds it;
//! when the hold ends, the template's rendering shows again at once. No allocation per
//! reading: the values and the rendering buffer are reused.

use std::sync::Arc;

use async_channel::Receiver;

use super::Display;
use crate::clock::now_us;
use crate::graph::counters::Counters;
use crate::graph::registry::Registry;
use crate::graph::{Item, SourceId, Value};
use crate::plugins::{Sink, Task};
use crate::sinks::template::Template;

const COUNTERS: &[&str] = &["readings", "shown"];

/// Per source id: not looked at yet, or shown at index `n` of the template's ids.
const UNSEEN: u8 = u8::MAX;
const NOT_SHOWN: u8 = u8::MAX - 1;

pub(crate) struct DisplaySink {
    display: Arc<Display>,
    template: Option<Template>,
    registry: Arc<Registry>,
    counters: Arc<Counters>,
}

impl DisplaySink {
    pub(crate) fn new(
        display: Arc<Display>,
        template: Option<Template>,
        registry: Arc<Registry>,
    ) -> DisplaySink {
        DisplaySink {
            display,
            template,
            registry,
            counters: Arc::new(Counters::new(COUNTERS)),
        }
    }

    /// Which of the template's ids `id` is (looked up once per source).
    fn slot(&self, t: &Template, id: SourceId, seen: &mut Vec<u8>) -> Option<usize> {
        if seen.len() <= id.index() {
            seen.resize(id.index() + 1, UNSEEN);
        }
        if seen[id.index()] == UNSEEN {
            let info = self.registry.get(id);
            seen[id.index()] = info
                .and_then(|i| t.ids().position(|s| s == &*i.name))
                .map_or(NOT_SHOWN, |n| n as u8);
        }
        match seen[id.index()] {
            NOT_SHOWN => None,
            n => Some(n as usize),
        }
    }

    async fn run(self, rx: Receiver<Item>) {
        let Some(t) = self.template.clone() else {
            // Only the tools write it: wait for the end.
            while rx.recv().await.is_ok() {}
            self.display.stop();
            return;
        };
        let ids: Vec<&str> = t.ids().collect();
        let mut values: Vec<Option<Value>> = vec![None; ids.len()];
        let mut seen = Vec::new();
        let mut text = String::new();
        // A rendering the hold kept off the display.
        let mut pending = false;
        // Show the template's dashes from the start.
        t.render(|_| None, &mut text);
        self.display.follow(&text, now_us());
        loop {
            let until = self.display.held_until();
            let got = if pending && until > now_us() {
                let wait = std::time::Duration::from_micros((until - now_us()).max(0) as u64);
                smol::future::or(async { Some(rx.recv().await) }, async {
                    smol::Timer::after(wait).await;
                    None
                })
                .await
            } else {
                Some(rx.recv().await)
            };
            let changed = match got {
                // The hold ended: show the template's rendering again.
                None => false,
                Some(Err(_)) => break,
                Some(Ok(Item::Reading(r))) => match self.slot(&t, r.source, &mut seen) {
                    Some(n) if values[n] != Some(r.value) => {
                        self.counters.inc(0);
                        values[n] = Some(r.value);
                        true
                    }
                    Some(_) => {
                        self.counters.inc(0);
                        false
                    }
                    None => false,
                },
                Some(Ok(_)) => false,
            };
            if changed {
                t.render(
                    |id| ids.iter().position(|s| *s == id).and_then(|n| values[n]),
                    &mut text,
                );
            }
            if changed || pending {
                pending = !self.display.follow(&text, now_us());
                if !pending {
                    self.counters.inc(1);
                }
            }
        }
        self.display.stop();
    }
}

impl Sink for DisplaySink {
    fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    fn start(self: Box<Self>, rx: Receiver<Item>) -> Task {
        Box::pin(self.run(rx))
    }
}
