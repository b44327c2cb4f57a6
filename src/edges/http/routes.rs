//! The one place that maps method and path to a handler: `ROUTES`, each with the query
//! parameters it takes and where it runs. A new endpoint is a handler plus one line here.
//!
//! Paths match segment by segment (`{name}` captures one non-empty segment, decoded), so
//! `/api/readings/x/history/extra` and `/api/readings/../health` are 404, not another
//! route. A known path with another method is 405 with `Allow`; HEAD runs the GET route
//! and the server drops the body.

use super::HttpView;
use super::assets::{self, Asset};
use super::cluster;
use super::events;
use super::gpio;
use super::health;
#[cfg(feature = "agent")]
use super::memory;
use super::nodes;
use super::readings;
use super::request::{Call, Method, Query, percent_decode, short};
use super::response::{Reply, err};
use super::session;
use super::stream::Streaming;
#[cfg(feature = "agent")]
use super::sync;

/// A handler that may block (LMDB reads, the network, hardware). It runs on a worker
/// thread and returns its answer.
pub(crate) type Blocking = fn(&HttpView, &Call) -> Reply;

/// Where a route's handler runs.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Handler {
    /// `/api/health`, answered on the `http` thread itself (it only awaits the event
    /// loop's ping), so it never waits behind another handler.
    Health,
    /// On `http-work`: store reads and status, milliseconds each.
    Work(Blocking),
    /// `/api/ask`, on the `http` thread too: it hands the question to the agent and
    /// awaits the answer (minutes, perhaps) without holding a worker.
    #[cfg(feature = "agent")]
    Ask,
    /// On `http-slow`: handlers that can wait seconds on the network or hardware (the
    /// recall embedding call, GPIO writes), so they never hold up the others.
    Slow(Blocking),
    /// A long-lived response (`/api/events`): opened on the `http` thread and written by
    /// the connection's task there until the client leaves. Counted against
    /// `[http] max_streams`, not `max_connections`.
    Stream(Streaming),
    /// A file compiled into the binary, answered on the `http` thread from memory.
    Asset(&'static Asset),
}

/// One endpoint.
#[derive(Debug)]
pub(crate) struct Route {
    pub method: Method,
    /// Segments after the leading `/`; `{name}` captures one.
    pub path: &'static str,
    /// The query parameters it takes; any other is refused with 400 naming these.
    pub query: &'static [&'static str],
    pub handler: Handler,
}

const HISTORY_QUERY: &[&str] = &["minutes", "limit"];
const OBSERVATIONS_QUERY: &[&str] = &["query", "type", "hours", "limit"];
const MEMORIES_QUERY: &[&str] = &["query", "limit"];

const fn route(
    method: Method,
    path: &'static str,
    query: &'static [&'static str],
    handler: Handler,
) -> Route {
    Route {
        method,
        path,
        query,
        handler,
    }
}

use Handler::{Health, Slow, Stream, Work};
use Method::{Get, Post, Put};

pub(crate) static ROUTES: &[Route] = &[
    route(Get, "api/health", &[], Health),
    route(Get, "api/status", &[], Work(health::status)),
    route(Get, "metrics", &[], Work(health::metrics)),
    route(Get, "api/readings", &[], Work(readings::all)),
    route(Get, "api/readings/{id}", &[], Work(readings::one)),
    route(
        Get,
        "api/readings/{id}/history",
        HISTORY_QUERY,
        Stream(readings::history),
    ),
    route(Get, "api/gpio", &[], Work(gpio::pins)),
    route(
        Get,
        "api/cluster/readings",
        cluster::READINGS_QUERY,
        Work(cluster::readings),
    ),
    route(Get, "api/nodes", &[], Work(nodes::list)),
    route(Get, "api/cluster/nodes", &[], Work(nodes::list)),
    route(Get, "api/events", events::QUERY, Stream(events::open)),
    route(Get, "", &[], Handler::Asset(&assets::INDEX_HTML)),
    route(Get, "index.html", &[], Handler::Asset(&assets::INDEX_HTML)),
    route(Get, "app.js", &[], Handler::Asset(&assets::APP_JS)),
    route(Get, "app.css", &[], Handler::Asset(&assets::APP_CSS)),
    route(Get, "chart.js", &[], Handler::Asset(&assets::CHART_JS)),
    route(Get, "api/session", &[], Work(session::current)),
    route(Post, "api/login", &[], Work(session::login)),
    route(Post, "api/logout", &[], Work(session::logout)),
    route(Put, "api/gpio/{pin}", &[], Slow(gpio::write)),
    route(Post, "api/gpio/{pin}", &[], Slow(gpio::write)),
    #[cfg(feature = "agent")]
    route(
        Get,
        "api/observations",
        OBSERVATIONS_QUERY,
        Work(memory::observations),
    ),
    #[cfg(feature = "agent")]
    route(Get, "api/memories", MEMORIES_QUERY, Work(memory::memories)),
    #[cfg(feature = "agent")]
    route(Post, "api/memory/recall", &[], Slow(memory::recall)),
    #[cfg(feature = "agent")]
    route(Get, "api/stats", &[], Work(memory::stats)),
    #[cfg(feature = "agent")]
    route(Post, "api/ask", &[], Handler::Ask),
    #[cfg(feature = "agent")]
    route(Post, "api/sync/push", &[], Work(sync::push)),
    #[cfg(feature = "agent")]
    route(Get, "api/sync/pull", sync::PULL_QUERY, Work(sync::pull)),
    #[cfg(feature = "agent")]
    route(
        Get,
        "api/cluster/observations",
        cluster::OBSERVATIONS_QUERY,
        Work(cluster::observations),
    ),
    #[cfg(feature = "agent")]
    route(Get, "api/cluster/stats", &[], Work(cluster::stats)),
    // A lean build says why the agent's endpoints are absent.
    #[cfg(not(feature = "agent"))]
    route(Get, "api/observations", OBSERVATIONS_QUERY, Work(no_agent)),
    #[cfg(not(feature = "agent"))]
    route(Get, "api/memories", MEMORIES_QUERY, Work(no_agent)),
    #[cfg(not(feature = "agent"))]
    route(Post, "api/memory/recall", &[], Work(no_agent)),
    #[cfg(not(feature = "agent"))]
    route(Get, "api/stats", &[], Work(no_agent)),
    #[cfg(not(feature = "agent"))]
    route(Post, "api/ask", &[], Work(no_agent)),
    #[cfg(not(feature = "agent"))]
    route(
        Get,
        "api/cluster/observations",
        &["node", "type", "hours", "limit"],
        Work(no_agent),
    ),
    #[cfg(not(feature = "agent"))]
    route(Get, "api/cluster/stats", &[], Work(no_agent)),
];

#[cfg(not(feature = "agent"))]
fn no_agent(_: &HttpView, call: &Call) -> Reply {
    err(
        404,
        crate::features::missing("agent", &format!("{} (the agent)", call.path)),
    )
}

/// The captures when `segs` fit `pattern`.
fn captures(pattern: &str, segs: &[String]) -> Option<Vec<String>> {
    let mut params = Vec::new();
    let mut pat = pattern.split('/');
    for seg in segs {
        let p = pat.next()?;
        if p.starts_with('{') {
            if seg.is_empty() {
                return None;
            }
            params.push(seg.clone());
        } else if p != seg {
            return None;
        }
    }
    pat.next().is_none().then_some(params)
}

/// The route for `method` on `path`, with its captures and checked query; or the 404,
/// 405 or 400 to answer instead.
pub(crate) fn resolve(
    method: Method,
    path: &str,
    raw_query: &str,
) -> Result<(&'static Route, Call), Reply> {
    let segs: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(|s| percent_decode(s, false))
        .collect();
    let lookup = if method == Method::Head {
        Method::Get
    } else {
        method
    };
    let mut allowed: Vec<&str> = Vec::new();
    for r in ROUTES {
        let Some(params) = captures(r.path, &segs) else {
            continue;
        };
        if r.method != lookup {
            allowed.push(r.method.as_str());
            if r.method == Method::Get {
                allowed.push(Method::Head.as_str());
            }
            continue;
        }
        let query = Query::parse(raw_query);
        query.check(r.query, &short(path))?;
        let call = Call {
            path: path.to_string(),
            params,
            query,
            ..Call::default()
        };
        return Ok((r, call));
    }
    if allowed.is_empty() {
        return Err(err(404, format!("no such endpoint: {}", short(path))));
    }
    let allow = allowed.join(", ");
    let mut reply = err(
        405,
        format!(
            "{} is not allowed on {}; allowed: {allow}",
            method.as_str(),
            short(path)
        ),
    );
    reply.allow = Some(allow);
    Err(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(method: Method, target: &str) -> u16 {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        match resolve(method, path, query) {
            Ok(_) => 200,
            Err(r) => r.code,
        }
    }

    #[test]
    fn unknown_paths_are_404_and_known_ones_with_another_method_405() {
        assert_eq!(code(Get, "/api/readings/x/history"), 200);
        assert_eq!(code(Get, "/api/readings/x/history/extra"), 404);
        assert_eq!(code(Get, "/api/readings/../health"), 404);
        assert_eq!(code(Get, "/api/nothing"), 404);
        assert_eq!(code(Get, "/api/readings//history"), 404);
        assert_eq!(code(Get, "/api/status/"), 200);
        assert_eq!(code(Method::Head, "/api/status"), 200);
        assert_eq!(code(Method::Delete, "/api/nothing"), 404);
        let e = resolve(Put, "/api/status", "").unwrap_err();
        assert_eq!((e.code, e.allow.as_deref()), (405, Some("GET, HEAD")));
        let e = resolve(Get, "/api/gpio/22", "").unwrap_err();
        assert_eq!((e.code, e.allow.as_deref()), (405, Some("PUT, POST")));
        assert_eq!(code(Method::Other, "/api/health"), 405);
    }

    #[test]
    fn captures_are_decoded_and_queries_checked() {
        let (r, call) = resolve(Get, "/api/readings/system%3Acpu_temp/history", "minutes=5")
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(r.path, "api/readings/{id}/history");
        assert_eq!(call.params, ["system:cpu_temp"]);
        assert_eq!(call.query.get("minutes"), Some("5"));
        assert_eq!(code(Get, "/api/readings/x/history?minutes=5&limit=2"), 200);
        let e = resolve(Get, "/api/readings/x/history", "minute=5").unwrap_err();
        assert_eq!(e.code, 400);
        let msg = e.body["error"].as_str().unwrap();
        assert!(
            msg.contains("'minute'") && msg.contains("minutes, limit"),
            "{msg}"
        );
        assert_eq!(code(Get, "/api/status?verbose=1"), 400);
    }

    #[test]
    fn every_route_is_reachable_and_unique() {
        for r in ROUTES {
            let path = format!("/{}", r.path.replace("{id}", "x").replace("{pin}", "1"));
            let (found, _) = resolve(r.method, &path, "").unwrap_or_else(|e| panic!("{e:?}"));
            assert!(
                std::ptr::eq(found, r),
                "{} {} shadowed",
                r.method.as_str(),
                r.path
            );
        }
    }
}
