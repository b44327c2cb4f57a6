//! Requests this node sent and awaits a response to: ids unique per connection, each
//! with a deadline (`[openclaw] request_timeout`), so a lost response is counted rather
//! than waited for. Bounded by what is in flight (one per invoke result or event).

use std::time::Instant;

/// The requests in flight on one connection.
#[derive(Default)]
pub(crate) struct Requests {
    next: u64,
    open: Vec<(String, &'static str, Instant)>,
}

impl Requests {
    /// A new id for `method`, due by `deadline`.
    pub(crate) fn start(&mut self, method: &'static str, deadline: Instant) -> String {
        self.next += 1;
        let id = format!("n{}", self.next);
        self.open.push((id.clone(), method, deadline));
        id
    }

    /// The response to `id` came: its method, if it was ours.
    pub(crate) fn done(&mut self, id: &str) -> Option<&'static str> {
        let i = self.open.iter().position(|(r, ..)| r == id)?;
        Some(self.open.swap_remove(i).1)
    }

    /// The methods of requests past their deadline at `now`, forgotten.
    pub(crate) fn expired(&mut self, now: Instant) -> Vec<&'static str> {
        let mut out = Vec::new();
        self.open.retain(|(_, m, d)| {
            let late = *d < now;
            if late {
                out.push(*m);
            }
            !late
        });
        out
    }

    /// Whether `id` still awaits its response.
    pub(crate) fn is_open(&self, id: &str) -> bool {
        self.open.iter().any(|(r, ..)| r == id)
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.open.iter().map(|(.., d)| *d).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ids_are_unique_and_late_requests_expire() {
        let t0 = Instant::now();
        let mut r = Requests::default();
        let a = r.start("node.invoke.result", t0 + Duration::from_secs(1));
        let b = r.start("node.event", t0 + Duration::from_secs(5));
        assert_ne!(a, b);
        assert_eq!(r.next_deadline(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(r.done(&a), Some("node.invoke.result"));
        assert_eq!(r.done(&a), None, "answered once");
        assert!(r.expired(t0 + Duration::from_secs(2)).is_empty());
        assert_eq!(r.expired(t0 + Duration::from_secs(6)), ["node.event"]);
        assert_eq!(r.next_deadline(), None);
    }
}
