//! The retention stage: pass raw readings on, build rollups for the long term, and
//! schedule age-off in small batches.
//!
//! Every item is forwarded unchanged (raw readings go on to the store). Numeric and
//! boolean readings (booleans as 0/1, so a rollup's mean is a duty cycle; text and
//! NaN/infinite values make no rollups) are accumulated per source and per level into an
//! open bucket `[start, start + every)` with `start = ts - ts.rem_euclid(every)`.
//!
//! - A reading for a later bucket closes the open one: the finished rollup is emitted
//!   right after the reading and a new bucket starts.
//! - A reading older than the open bucket (out of order) is emitted at once as a
//!   single-reading rollup of its own bucket; the store merges rollups with the same key
//!   (count/min/max/sum combine), so nothing is lost and the open bucket is undisturbed.
//! - `on_tick(now)` closes every open bucket whose end is `<= now` (a source that stopped
//!   still gets its last bucket stored), then emits one prune for raw readings
//!   (`now - raw_for`) and one per rollup level (`now - keep`), each at most
//!   `prune_batch` rows.
//! - `on_close(now)` emits every open bucket, finished or not (the store merges a partial
//!   bucket with the rest of it after a restart), and no prunes.

use std::sync::Arc;

use log::debug;

use crate::clock::iso8601;
use crate::config::duration::Dur;
use crate::graph::counters::Counters;
use crate::graph::registry::{Registry, SourceInfo};
use crate::graph::shown::WithUnit;
use crate::graph::stage::{Out, Stage};
use crate::graph::{Item, Micros, Prune, PruneTarget, Reading, Rollup, SourceId, Value};
pub use crate::stages::retention_policy::{RetentionParams, RollupLevel};

/// Counter names, in index order.
const COUNTER_NAMES: &[&str] = &["in", "rollups_emitted", "prunes_emitted"];
const C_IN: usize = 0;
const C_ROLLUPS: usize = 1;
const C_PRUNES: usize = 2;

struct SourceState {
    info: Option<Arc<SourceInfo>>,
    /// The open bucket of each rollup level (index = level).
    open: Vec<Option<Rollup>>,
}

impl SourceState {
    fn name(&self) -> &str {
        self.info.as_ref().map_or("?", |i| &i.name)
    }

    fn unit(&self) -> &str {
        self.info.as_ref().map_or("", |i| &i.unit)
    }
}

fn bucket(source: SourceId, level: u8, start: Micros, x: f64) -> Rollup {
    Rollup {
        source,
        level,
        bucket_start: start,
        count: 1,
        min: x,
        max: x,
        sum: x,
    }
}

fn emit_rollup(r: Rollup, why: &str, st: &SourceState, c: &Counters, label: &str, out: &mut Out) {
    c.inc(C_ROLLUPS);
    let shown = |x: f64| WithUnit(Value::Number(x), st.unit());
    debug!(
        "{label}: {} rollup level {} bucket {} ({why}): count {} min {} max {} mean {}",
        st.name(),
        r.level,
        iso8601(r.bucket_start),
        r.count,
        shown(r.min),
        shown(r.max),
        shown(r.mean())
    );
    out.emit(Item::Rollup(r));
}

pub struct Retention {
    params: RetentionParams,
    registry: Arc<Registry>,
    counters: Arc<Counters>,
    /// Log prefix: `retention` or `retention <name>`.
    label: String,
    sources: Vec<Option<SourceState>>,
    /// When `on_tick` last ran (the runner ticks once at start).
    last_tick: Micros,
    /// The wall time the last age-off counted back from ([`Retention::age_off_now`]).
    horizon: Option<Micros>,
    /// Whether age-off is catching up with a clock stepped forward (logged once a step).
    held_back: bool,
}

impl Retention {
    pub fn new(params: RetentionParams, registry: Arc<Registry>) -> Retention {
        Retention {
            params,
            registry,
            counters: Arc::new(Counters::new(COUNTER_NAMES)),
            label: "retention".into(),
            sources: Vec::new(),
            last_tick: 0,
            horizon: None,
            held_back: false,
        }
    }

    /// The wall time age-off counts back from: the clock's `now` at the first tick, when
    /// the clock goes back, and while it is not set (1970: nothing is old yet); otherwise
    /// at most two `prune_every` past the last one. A clock stepped forward (a bad NTP
    /// server, a day) then does not delete at once what was stored moments ago: age-off
    /// catches up by one `prune_every` a run. A clock set for the first time (1970 to
    /// now) is taken at once, else age-off would wait years.
    fn age_off_now(&mut self, now: Micros) -> Micros {
        let step = self.params.prune_every.max(0).saturating_mul(2);
        let h = match self.horizon {
            Some(h) if crate::clock::is_set(h) => now.min(h.saturating_add(step)),
            _ => now,
        };
        if h < now && !self.held_back {
            log::warn!(
                "{}: the clock is {} ahead of where age-off was; it catches up gradually rather than deleting at once",
                self.label,
                Dur(now - h)
            );
        }
        self.held_back = h < now;
        self.horizon = Some(h);
        h
    }

    /// Name the stage in log lines (`retention keep: ...`).
    pub fn with_name(mut self, name: &str) -> Retention {
        self.label = format!("retention {name}");
        self
    }

    fn on_reading(&mut self, r: Reading, out: &mut Out) {
        let Some(x) = r.value.as_f64().filter(|x| x.is_finite()) else {
            return;
        };
        if self.params.rollups.is_empty() {
            return;
        }
        let idx = r.source.index();
        if self.sources.len() <= idx {
            self.sources.resize_with(idx + 1, || None);
        }
        let (levels, registry) = (self.params.rollups.len(), &self.registry);
        let st = self.sources[idx].get_or_insert_with(|| SourceState {
            info: registry.get(r.source),
            open: vec![None; levels],
        });
        let (c, label) = (&*self.counters, self.label.as_str());
        for (i, level) in self.params.rollups.iter().enumerate() {
            if level.every <= 0 {
                continue;
            }
            let start = r.ts - r.ts.rem_euclid(level.every);
            let li = i as u8;
            match &mut st.open[i] {
                Some(b) if b.bucket_start == start => {
                    b.count += 1;
                    b.min = b.min.min(x);
                    b.max = b.max.max(x);
                    b.sum += x;
                }
                Some(b) if start < b.bucket_start => {
                    let late = bucket(r.source, li, start, x);
                    emit_rollup(late, "late reading", st, c, label, out);
                }
                slot => {
                    if let Some(done) = slot.replace(bucket(r.source, li, start, x)) {
                        emit_rollup(done, "closed by a later reading", st, c, label, out);
                    }
                }
            }
        }
    }

    /// Emit open buckets ending at or before `until` (all of them for `None`).
    fn flush(&mut self, until: Option<Micros>, why: &str, out: &mut Out) {
        let (c, label) = (&*self.counters, self.label.as_str());
        for st in self.sources.iter_mut().flatten() {
            for (i, level) in self.params.rollups.iter().enumerate() {
                let Some(b) = st.open[i] else { continue };
                if until.is_none_or(|now| b.bucket_start.saturating_add(level.every) <= now) {
                    st.open[i] = None;
                    emit_rollup(b, why, st, c, label, out);
                }
            }
        }
    }

    fn prune(&self, target: PruneTarget, keep: Micros, now: Micros, out: &mut Out) {
        let older_than = now.saturating_sub(keep);
        self.counters.inc(C_PRUNES);
        debug!(
            "{}: prune {target:?} older than {} (kept {}), at most {} rows",
            self.label,
            iso8601(older_than),
            Dur(keep),
            self.params.prune_batch
        );
        out.emit(Item::Prune(Prune {
            target,
            older_than,
            max: self.params.prune_batch,
        }));
    }
}

impl Stage for Retention {
    fn on_item(&mut self, item: Item, out: &mut Out) {
        out.emit(item);
        if let Item::Reading(r) = item {
            self.counters.inc(C_IN);
            self.on_reading(r, out);
        }
    }

    /// The next age-off run, `prune_every` after the last tick (none if it is not positive).
    fn next_tick(&self) -> Option<Micros> {
        (self.params.prune_every > 0)
            .then(|| self.last_tick.saturating_add(self.params.prune_every))
    }

    fn on_tick(&mut self, now: Micros, out: &mut Out) {
        self.last_tick = now;
        self.flush(Some(now), "bucket ended", out);
        let horizon = self.age_off_now(now);
        self.prune(PruneTarget::Raw, self.params.raw_for, horizon, out);
        for (i, level) in self.params.rollups.iter().enumerate() {
            self.prune(PruneTarget::Rollup(i as u8), level.keep, horizon, out);
        }
    }

    fn on_close(&mut self, _now: Micros, out: &mut Out) {
        self.flush(None, "shutdown, partial", out);
    }

    fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }
}

// ---------------------------------------------------------------------------------------
// The kind: parameters and setup.

use crate::config::StageSpec;
use crate::config::duration::format_duration;
use crate::config::expect::Want;
use crate::config::spec::Spec;
use crate::plugins::Setup;
use crate::plugins::params::{Problem, Reader, describe, int_in, positive_dur};
use crate::plugins::{Kind, Make, Param, ParamsBox, Role, Unavailable, params_of};

const MAX_ROLLUP_LEVELS: usize = 8;

pub const KIND: Kind = Kind {
    role: Role::Stage,
    name: "retention",
    version: env!("CARGO_PKG_VERSION"),
    doc: "rollups (min/max/mean per bucket) for the long term and age-off of old rows",
    params: &[
        Param::new(Spec {
            default: "\"7d\"",
            doc: "how long raw readings are kept",
            ..Spec::new("raw_for", Want::Duration)
        }),
        Param::new(Spec {
            default: "[{ every = \"1m\", keep = \"30d\" }, { every = \"1h\", keep = \"1y\" }]",
            doc: "levels finest first, e.g. [{ every = \"1m\", keep = \"30d\" }, { every = \"1h\", keep = \"1y\" }]",
            ..Spec::new("rollups", Want::Tables)
        }),
        Param::new(Spec {
            default: "\"1m\"",
            doc: "how often old rows are aged off",
            ..Spec::new("prune_every", Want::Duration)
        }),
        Param::new(Spec {
            range: Some((1.0, 100_000.0)),
            default: "1000",
            doc: "most rows deleted per table per age-off run",
            hint: "use 1 to 100000 rows (default 1000)",
            ..Spec::new("prune_batch", Want::WholeNumber)
        }),
    ],
    make: Make::Stage { parse, setup },
};

fn parse(r: &mut Reader) -> ParamsBox {
    let mut out = RetentionParams::default();
    for p in r.params() {
        match p.key.as_str() {
            "raw_for" => match positive_dur(&p.value) {
                Ok(d) => out.raw_for = d,
                Err(e) => r.bad(p, e),
            },
            "prune_every" => match positive_dur(&p.value) {
                Ok(d) => out.prune_every = d,
                Err(e) => r.bad(p, e),
            },
            "prune_batch" => {
                match int_in(&p.value, &KIND.param("prune_batch").expect("declared").spec) {
                    Ok(b) => out.prune_batch = b as u32,
                    Err(e) => r.bad(p, e),
                }
            }
            "rollups" => match parse_rollups(&p.value) {
                Ok(levels) => out.rollups = levels,
                Err(e) => r.bad(p, e),
            },
            _ => {}
        }
    }
    Arc::new(out)
}

fn parse_rollups(v: &toml::Value) -> Result<Vec<RollupLevel>, Problem> {
    use toml::Value;
    let example = "write e.g. rollups = [{ every = \"1m\", keep = \"30d\" }, { every = \"1h\", keep = \"1y\" }]";
    let Value::Array(a) = v else {
        return Err((
            format!("expected a list of levels, found {}", describe(v)),
            Some(example.into()),
        ));
    };
    if a.len() > MAX_ROLLUP_LEVELS {
        return Err((
            format!(
                "{} rollup levels; at most {MAX_ROLLUP_LEVELS} are allowed",
                a.len()
            ),
            Some("a few levels (e.g. 1m and 1h) cover years".into()),
        ));
    }
    let mut levels: Vec<RollupLevel> = Vec::new();
    for (i, item) in a.iter().enumerate() {
        let n = i + 1;
        let Value::Table(t) = item else {
            return Err((
                format!(
                    "rollup level {n}: expected a table such as {{ every = \"1m\", keep = \"30d\" }}, found {}",
                    describe(item)
                ),
                Some(example.into()),
            ));
        };
        for k in t.keys() {
            if k != "every" && k != "keep" {
                return Err((
                    format!("rollup level {n}: unknown key '{k}'"),
                    Some(crate::config::suggest::hint(k, "keys", &["every", "keep"])),
                ));
            }
        }
        let get = |k: &str| -> Result<Micros, Problem> {
            let v = t.get(k).ok_or_else(|| {
                (
                    format!("rollup level {n} has no `{k}`"),
                    Some(example.to_string()),
                )
            })?;
            positive_dur(v).map_err(|(m, h)| (format!("rollup level {n}, {k}: {m}"), h))
        };
        let (every, keep) = (get("every")?, get("keep")?);
        if keep < every {
            return Err((
                format!(
                    "rollup level {n} keeps {} of {} buckets: keep must be at least every",
                    format_duration(keep),
                    format_duration(every)
                ),
                None,
            ));
        }
        if let Some(prev) = levels.last()
            && every <= prev.every
        {
            return Err((
                format!(
                    "rollup level {n} (every {}) is not coarser than level {} (every {})",
                    format_duration(every),
                    n - 1,
                    format_duration(prev.every)
                ),
                Some("list levels finest first, each with a larger `every`".into()),
            ));
        }
        levels.push(RollupLevel { every, keep });
    }
    Ok(levels)
}

fn setup(spec: &StageSpec, s: &mut Setup) -> Result<Box<dyn Stage>, Unavailable> {
    let p = params_of::<RetentionParams>(&spec.params)
        .ok_or_else(|| Unavailable::Failed("parameters of another kind".into()))?;
    Ok(Box::new(
        Retention::new(p.clone(), s.parts.registry.clone()).with_name(&spec.name),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Change, ShortText, Value, ValueKind};

    const S: Micros = 1_000_000;
    const MIN: Micros = 60 * S;
    const DAY: Micros = 86_400 * S;

    fn params() -> RetentionParams {
        RetentionParams {
            raw_for: 7 * DAY,
            rollups: vec![
                RollupLevel {
                    every: MIN,
                    keep: 30 * DAY,
                },
                RollupLevel {
                    every: 10 * MIN,
                    keep: 365 * DAY,
                },
            ],
            prune_every: MIN,
            prune_batch: 500,
        }
    }

    fn setup(params: RetentionParams) -> (Retention, SourceId, SourceId) {
        let reg = Arc::new(Registry::new());
        let cpu = reg
            .intern("system:cpu_temp", "celsius", ValueKind::Number)
            .id;
        let pin = reg.intern("gpio:17", "boolean", ValueKind::Bool).id;
        (Retention::new(params, reg).with_name("keep"), cpu, pin)
    }

    fn feed(r: &mut Retention, source: SourceId, ts: Micros, value: Value) -> Vec<Item> {
        let mut out = Out::default();
        let item = Item::Reading(Reading::new(source, ts, value));
        r.on_item(item, &mut out);
        assert_eq!(
            out.items[0], item,
            "raw readings are forwarded first, unchanged"
        );
        out.items.split_off(1)
    }

    fn rollups(items: &[Item]) -> Vec<Rollup> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::Rollup(r) => Some(*r),
                _ => None,
            })
            .collect()
    }

    fn prunes(items: &[Item]) -> Vec<Prune> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::Prune(p) => Some(*p),
                _ => None,
            })
            .collect()
    }

    fn num(v: f64) -> Value {
        Value::Number(v)
    }

    #[test]
    fn a_bucket_closes_when_a_reading_crosses_into_the_next() {
        let (mut r, cpu, _) = setup(params());
        let base = 1000 * MIN;
        for (i, v) in [40.0, 44.0, 42.0].into_iter().enumerate() {
            assert!(feed(&mut r, cpu, base + i as Micros * 10 * S, num(v)).is_empty());
        }
        let out = rollups(&feed(&mut r, cpu, base + MIN + 5 * S, num(50.0)));
        assert_eq!(out.len(), 1);
        let b = out[0];
        assert_eq!((b.source, b.level, b.bucket_start), (cpu, 0, base));
        assert_eq!((b.count, b.min, b.max), (3, 40.0, 44.0));
        assert_eq!(b.mean(), 42.0);
        assert_eq!(r.counters().by_name("rollups_emitted"), 1);
    }

    #[test]
    fn levels_have_their_own_buckets() {
        let (mut r, cpu, _) = setup(params());
        let mut all = Vec::new();
        // One reading every 30s for 25 minutes, value = minute number.
        for i in 0..50 {
            let ts = i * 30 * S;
            all.extend(rollups(&feed(&mut r, cpu, ts, num((i / 2) as f64))));
        }
        let fine: Vec<_> = all.iter().filter(|b| b.level == 0).collect();
        let coarse: Vec<_> = all.iter().filter(|b| b.level == 1).collect();
        assert_eq!(fine.len(), 24);
        assert!(fine.iter().all(|b| b.count == 2));
        assert_eq!(fine[3].bucket_start, 3 * MIN);
        assert_eq!(fine[3].mean(), 3.0);
        assert_eq!(coarse.len(), 2);
        assert_eq!((coarse[0].bucket_start, coarse[0].count), (0, 20));
        assert_eq!((coarse[0].min, coarse[0].max), (0.0, 9.0));
        assert_eq!((coarse[1].bucket_start, coarse[1].count), (10 * MIN, 20));
    }

    #[test]
    fn bools_roll_up_as_a_duty_cycle() {
        let (mut r, _, pin) = setup(params());
        for (i, b) in [true, false, false, true].into_iter().enumerate() {
            feed(&mut r, pin, i as Micros * 10 * S, Value::Bool(b));
        }
        let out = rollups(&feed(&mut r, pin, MIN, Value::Bool(false)));
        assert_eq!(out[0].mean(), 0.5);
    }

    #[test]
    fn a_late_reading_becomes_its_own_rollup() {
        let (mut r, cpu, _) = setup(params());
        feed(&mut r, cpu, 5 * MIN, num(1.0));
        let out = rollups(&feed(&mut r, cpu, 3 * MIN + S, num(7.0)));
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].bucket_start, out[0].count, out[0].sum),
            (3 * MIN, 1, 7.0)
        );
        // The open bucket is untouched.
        let out = rollups(&feed(&mut r, cpu, 6 * MIN, num(2.0)));
        assert_eq!(
            (out[0].bucket_start, out[0].count, out[0].sum),
            (5 * MIN, 1, 1.0)
        );
    }

    #[test]
    fn tick_closes_stale_buckets_and_emits_prunes() {
        let p = params();
        let (mut r, cpu, _) = setup(p);
        let now0 = 100 * DAY;
        // The runner ticks once at start; the next tick is prune_every later.
        r.on_tick(now0, &mut Out::default());
        assert_eq!(r.next_tick(), Some(now0 + MIN));
        feed(&mut r, cpu, now0 + 10 * S, num(3.0));
        feed(&mut r, cpu, now0 + 20 * S, num(5.0));

        // Before the minute ends: nothing to close, only prunes.
        let mut out = Out::default();
        r.on_tick(now0 + 30 * S, &mut out);
        assert!(rollups(&out.items).is_empty());
        let now = now0 + 30 * S;
        assert_eq!(
            prunes(&out.items),
            vec![
                Prune {
                    target: PruneTarget::Raw,
                    older_than: now - 7 * DAY,
                    max: 500
                },
                Prune {
                    target: PruneTarget::Rollup(0),
                    older_than: now - 30 * DAY,
                    max: 500
                },
                Prune {
                    target: PruneTarget::Rollup(1),
                    older_than: now - 365 * DAY,
                    max: 500
                },
            ]
        );

        // The source stopped; the minute bucket closes on the tick at its end.
        let mut out = Out::default();
        r.on_tick(now0 + MIN, &mut out);
        let closed = rollups(&out.items);
        assert_eq!(closed.len(), 1);
        assert_eq!(
            (closed[0].level, closed[0].count, closed[0].sum),
            (0, 2, 8.0)
        );
        assert_eq!(prunes(&out.items).len(), 3);

        // The 10-minute bucket waits for its own end.
        let mut out = Out::default();
        r.on_tick(now0 + 10 * MIN, &mut out);
        let closed = rollups(&out.items);
        assert_eq!((closed.len(), closed[0].level), (1, 1));
        let c = r.counters();
        assert_eq!(
            c.by_name("prunes_emitted"),
            12,
            "three per tick, four ticks"
        );
        assert_eq!(c.by_name("rollups_emitted"), 2);
    }

    #[test]
    fn age_off_follows_a_clock_stepped_forward_only_gradually() {
        let raw_horizon = |out: &Out| prunes(&out.items)[0].older_than + 7 * DAY;
        let (mut r, _, _) = setup(params());
        let now0 = crate::clock::SET_AFTER + 400 * DAY;
        let mut out = Out::default();
        r.on_tick(now0, &mut out);
        assert_eq!(raw_horizon(&out), now0, "the first tick trusts the clock");
        // Stepped forward a day: age-off moves two prune_every (1 min) a run, not a day.
        let mut out = Out::default();
        r.on_tick(now0 + DAY + MIN, &mut out);
        assert_eq!(raw_horizon(&out), now0 + 2 * MIN);
        let mut out = Out::default();
        r.on_tick(now0 + DAY + 2 * MIN, &mut out);
        assert_eq!(raw_horizon(&out), now0 + 4 * MIN);
        // Stepped back an hour: followed at once (it only deletes less).
        let mut out = Out::default();
        r.on_tick(now0 - 3600 * S, &mut out);
        assert_eq!(raw_horizon(&out), now0 - 3600 * S);
        // A clock set for the first time (it read 1970) is taken at once.
        let (mut r, _, _) = setup(params());
        r.on_tick(10 * MIN, &mut Out::default());
        let mut out = Out::default();
        r.on_tick(now0, &mut out);
        assert_eq!(raw_horizon(&out), now0);
    }

    #[test]
    fn close_flushes_partial_buckets_without_prunes() {
        let (mut r, cpu, pin) = setup(params());
        feed(&mut r, cpu, 10 * S, num(1.0));
        feed(&mut r, pin, 20 * S, Value::Bool(true));
        let mut out = Out::default();
        r.on_close(30 * S, &mut out);
        assert!(prunes(&out.items).is_empty());
        let flushed = rollups(&out.items);
        assert_eq!(flushed.len(), 4, "two sources x two levels");
        assert!(flushed.iter().all(|b| b.count == 1 && b.bucket_start == 0));
        let mut out = Out::default();
        r.on_close(40 * S, &mut out);
        assert!(out.items.is_empty(), "nothing is emitted twice");
    }

    #[test]
    fn text_passes_but_makes_no_rollups() {
        let (mut r, cpu, _) = setup(params());
        for t in 0..5 {
            let out = feed(
                &mut r,
                cpu,
                t * MIN,
                Value::Text(ShortText::new("charging")),
            );
            assert!(out.is_empty());
        }
        let mut out = Out::default();
        r.on_close(10 * MIN, &mut out);
        assert!(out.items.is_empty());
        assert_eq!(r.counters().by_name("in"), 5);
    }

    #[test]
    fn other_items_are_forwarded() {
        let (mut r, cpu, _) = setup(params());
        let change = Item::Change(Change {
            source: cpu,
            ts: 1,
            volatile: true,
            score: 0.5,
        });
        let mut out = Out::default();
        r.on_item(change, &mut out);
        assert_eq!(out.items, vec![change]);
        assert_eq!(r.counters().by_name("in"), 0);
    }

    #[test]
    fn history_level_follows_the_windows() {
        let p = params();
        assert_eq!(p.level_for(DAY), None, "within the raw week");
        assert_eq!(p.level_for(8 * DAY), Some(0), "minute rollups keep 30 days");
        assert_eq!(p.level_for(60 * DAY), Some(1));
        assert_eq!(
            p.level_for(3650 * DAY),
            Some(1),
            "the coarsest when none covers it"
        );
        let no_rollups = RetentionParams {
            rollups: vec![],
            ..params()
        };
        assert_eq!(no_rollups.level_for(60 * DAY), None);
    }
}
