//! The display sinks' task (both kinds): the latest value of each id the template shows,
//! rendered when one of them changed, onto the display unless a tool write holds it;
//! when the hold ends, the template's rendering shows again at once (the sink wakes for
//! a tool's write, then for the end of its hold). `next` is that wait, which the `led`
//! sink shares. No allocation per
//! reading: the values and the rendering buffer are reused.

use std::sync::Arc;

use async_channel::Receiver;

use super::Display;
use crate::clock::now_us;
use crate::graph::counters::Counters;
use crate::graph::registry::Registry;
use crate::graph::{Item, Micros, SourceId, Value};
use crate::plugins::{Sink, Task};
use crate::sinks::template::Template;

const COUNTERS: &[&str] = &["readings", "shown"];

/// Per source id: not looked at yet, or shown at index `n` of the template's ids.
const UNSEEN: u8 = u8::MAX;
const NOT_SHOWN: u8 = u8::MAX - 1;

/// A display sink: its display, its template (none: the tools alone write it), and the
/// registry to name the sources it sees.
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
        let written = self.display.written();
        // Show the template's dashes from the start.
        t.render(|_| None, &mut text);
        self.display.follow(&text, now_us());
        loop {
            let changed = match next(&rx, &written, self.display.held_until()).await {
                // The hold ended: the template's rendering shows again.
                Next::HoldOver => {
                    if self.display.follow(&text, now_us()) {
                        self.counters.inc(1);
                    }
                    false
                }
                // A tool wrote: the next turn waits for the end of its hold too.
                Next::Written => false,
                Next::Item(None) => break,
                Next::Item(Some(Item::Reading(r))) => match self.slot(&t, r.source, &mut seen) {
                    Some(n) => {
                        self.counters.inc(0);
                        let new = values[n] != Some(r.value);
                        values[n] = Some(r.value);
                        new
                    }
                    None => false,
                },
                Next::Item(Some(_)) => false,
            };
            if changed {
                t.render(
                    |id| ids.iter().position(|s| *s == id).and_then(|n| values[n]),
                    &mut text,
                );
                // Refused while a tool write holds the display; shown when it ends.
                if self.display.follow(&text, now_us()) {
                    self.counters.inc(1);
                }
            }
        }
        self.display.stop();
    }
}

/// What woke a display or LED sink.
pub(crate) enum Next {
    /// An item from upstream; `None`: the inbox closed (the node stops).
    Item(Option<Item>),
    /// A tool wrote the device (its hold starts now).
    Written,
    /// The hold of the last tool write is over.
    HoldOver,
}

/// The next of: an item, a tool's write, the end of the hold lasting `until` (µs since
/// the epoch; past: no hold).
pub(crate) async fn next(rx: &Receiver<Item>, written: &Receiver<()>, until: Micros) -> Next {
    let item = async { Next::Item(rx.recv().await.ok()) };
    let wrote = async {
        match written.recv().await {
            Ok(()) => Next::Written,
            Err(_) => std::future::pending().await,
        }
    };
    let over = async {
        let left = until - now_us();
        if left <= 0 {
            return std::future::pending().await;
        }
        smol::Timer::after(std::time::Duration::from_micros(left as u64)).await;
        Next::HoldOver
    };
    smol::future::or(item, smol::future::or(wrote, over)).await
}

impl Sink for DisplaySink {
    fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    fn start(self: Box<Self>, rx: Receiver<Item>) -> Task {
        Box::pin(self.run(rx))
    }
}
