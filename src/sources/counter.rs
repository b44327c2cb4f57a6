//! The `counter` source (test builds only, the `test-kinds` feature): counts up by `step`
//! every `every`, as `counter:<node name>`. It exists to show, and test, that a kind is
//! one file plus one line in `plugins::registry`: nothing else in the program names it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::clock::now_us;
use crate::config::SourceSpec;
use crate::config::expect::Want;
use crate::config::spec::Spec;
use crate::graph::registry::SourceInfo;
use crate::graph::{Item, Reading, Value, ValueKind};
use crate::plugins::params::{Reader, as_num};
use crate::plugins::{Kind, Make, Param, ParamsBox, Produced, Role, Unavailable, params_of};
use crate::plugins::{Setup, Task};
use crate::plugins::{Source, SourceCtx};

#[derive(Clone, Debug, PartialEq)]
struct CounterParams {
    start: f64,
    step: f64,
}

pub const KIND: Kind = Kind {
    role: Role::Source,
    name: "counter",
    version: env!("CARGO_PKG_VERSION"),
    doc: "counts up by step every `every` (a test kind)",
    params: &[
        Param::new(Spec {
            default: "\"10s\"",
            doc: "how often it counts",
            ..Spec::new("every", Want::Duration)
        }),
        Param::new(Spec {
            default: "0",
            doc: "the first value",
            ..Spec::new("start", Want::Number)
        }),
        Param::new(Spec {
            range: Some((0.001, 1e9)),
            default: "1",
            doc: "added each time",
            hint: "a step from 0.001 to 1e9, e.g. step = 1",
            ..Spec::new("step", Want::Number)
        }),
    ],
    make: Make::Source {
        ids: "counter",
        parse,
        produces,
        setup,
    },
};

fn parse(r: &mut Reader) -> ParamsBox {
    let mut out = CounterParams {
        start: 0.0,
        step: 1.0,
    };
    for p in r.params() {
        let n = match as_num(&p.value) {
            Ok(n) => n,
            Err(e) => {
                r.bad(p, e);
                continue;
            }
        };
        match p.key.as_str() {
            "start" => out.start = n,
            _ => match KIND.param("step").and_then(|d| d.spec.range) {
                Some((lo, hi)) if n < lo || n > hi => r.bad(
                    p,
                    (
                        format!("{n} is out of range"),
                        Some(KIND.param("step").map_or("", |d| d.spec.hint).into()),
                    ),
                ),
                _ => out.step = n,
            },
        }
    }
    Arc::new(out)
}

fn produces(spec: &SourceSpec, _: &crate::config::Settings) -> Produced {
    Produced {
        ids: vec![(format!("counter:{}", spec.name), ValueKind::Number)],
        open: None,
    }
}

fn setup(spec: &SourceSpec, s: &mut Setup) -> Result<Box<dyn Source>, Unavailable> {
    let p = params_of::<CounterParams>(&spec.params)
        .ok_or_else(|| Unavailable::Failed("parameters of another kind".into()))?;
    let info = s.parts.registry.intern(
        &format!("counter:{}", spec.name),
        "count",
        ValueKind::Number,
    );
    info.live.interval_us.store(spec.every, Ordering::Relaxed);
    info.live.available.store(true, Ordering::Relaxed);
    Ok(Box::new(Counter {
        info,
        next: p.start,
        step: p.step,
    }))
}

struct Counter {
    info: Arc<SourceInfo>,
    next: f64,
    step: f64,
}

impl Source for Counter {
    fn start(mut self: Box<Self>, ctx: SourceCtx) -> Task {
        Box::pin(async move {
            loop {
                let now = now_us();
                let value = Value::Number(self.next);
                self.info.live.record(now, value);
                ctx.out
                    .send(Item::Reading(Reading::new(self.info.id, now, value)))
                    .await;
                self.next += self.step;
                let wait = Duration::from_micros(self.info.live.interval().max(100_000) as u64);
                let stop = smol::future::or(
                    async {
                        ctx.shutdown.wait().await;
                        true
                    },
                    async {
                        smol::Timer::after(wait).await;
                        false
                    },
                )
                .await;
                if stop {
                    return;
                }
            }
        })
    }
}
