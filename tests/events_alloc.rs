//! The live events' hot path allocates nothing per reading: the events sink's
//! serialisation into its reused buffer and the hub's copy into a reused slot of the
//! ring, counted by a global allocator that counts this test's thread only.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use smollama::graph::registry::Registry;
use smollama::graph::{Reading, Value, ValueKind};
use smollama::messages::{EventHub, EventKind};
use smollama::sinks::events::write_reading;

/// Counts allocations made while `COUNTING` is set on the allocating thread.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: every call is passed to the system allocator unchanged; counting touches only
// an atomic and a const-initialised thread-local (which allocate nothing).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn serialising_and_publishing_a_reading_allocates_nothing_once_warm() {
    let registry = Registry::new();
    let temp = registry.intern("system:cpu_temp", "°C", ValueKind::Number);
    let pin = registry.intern("gpio:17", "boolean", ValueKind::Bool);
    let hub = EventHub::new(64, 64 * 1024, 1);
    let mut buf = Vec::with_capacity(256);
    let reading = |i: u64| {
        if i.is_multiple_of(3) {
            Reading::new(pin.id, i as i64 * 1000, Value::Bool(i.is_multiple_of(2)))
        } else {
            Reading::new(
                temp.id,
                i as i64 * 1000,
                Value::Number(40.0 + i as f64 / 7.0),
            )
        }
    };
    // Warm: the ring fills, and from then on each event reuses an evicted buffer.
    for i in 0..1000 {
        write_reading(&mut buf, &registry, &reading(i));
        hub.publish(EventKind::Reading, &buf).unwrap();
    }
    COUNTING.with(|c| c.set(true));
    for i in 1000..11_000 {
        write_reading(&mut buf, &registry, &reading(i));
        hub.publish(EventKind::Reading, &buf).unwrap();
    }
    COUNTING.with(|c| c.set(false));
    let n = ALLOCATIONS.load(Ordering::Relaxed);
    assert_eq!(n, 0, "{n} allocations for 10,000 readings");
    // And it did the work: the ring holds the newest, as JSON.
    let mut out = Vec::new();
    let got = hub.read_after(hub.newest() - 1, &mut out, 1 << 20);
    assert_eq!(got.events, 1);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("\"source\":\"system:cpu_temp\""), "{text}");
}
