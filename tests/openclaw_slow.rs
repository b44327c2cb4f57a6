//! A slow command does not hold the node's gateway connection: commands run on the
//! `openclaw-cmd` thread, so while `smollama.recall` waits for an embedding the
//! `openclaw` thread keeps reading the socket and answering. Against a real gateway
//! (`common/openclaw.rs`); the "Ollama" is a stand-in for one that hangs: it accepts
//! connections and never answers, so the recall's embedding call waits for
//! `[ollama] read_timeout` and then recalls by words.
//!
//! While the recall runs, the operator repeats an earlier invoke with the same
//! idempotency key (what a retry sends): the node answers it at once from its
//! remembered results, which it could not while its one thread sat in the tool.

mod common;
#[path = "common/openclaw.rs"]
mod openclaw_gw;

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use openclaw_gw::{GATEWAY_TOKEN, Gateway, Operator};
use serde_json::{Value, json};

/// How long the hung Ollama holds the embedding call.
const HANG_S: u64 = 8;

#[test]
fn a_retry_is_answered_while_a_slow_recall_runs() {
    // The hung Ollama: connections accepted and held, never a byte back.
    let hung = TcpListener::bind("127.0.0.1:0").unwrap();
    let hung_port = hung.local_addr().unwrap().port();
    let asked = Arc::new(AtomicUsize::new(0));
    let count = asked.clone();
    std::thread::spawn(move || {
        let mut held: Vec<TcpStream> = Vec::new();
        for c in hung.incoming().map_while(Result::ok) {
            held.push(c);
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    let state = TempDir::new("oc-slow-gw");
    let gw = Gateway::start(state.path(), &["smollama.recall", "smollama.sources.list"]);
    let dir = TempDir::new("oc-slow");
    let port = free_port();
    let cfg = write_config_extra(
        dir.path(),
        port,
        UPTIME_PIPELINE,
        &format!(
            "[agent]\nenabled = false\n\n[ollama]\nhost = \"127.0.0.1\"\nport = {hung_port}\nretries = 0\nconnect_timeout = \"1s\"\nread_timeout = \"{HANG_S}s\"\n\n\
             [memory]\nembedding_model = \"nomic-embed-text\"\n\n\
             [openclaw]\nenabled = true\nurl = \"{}\"\ntoken = \"{GATEWAY_TOKEN}\"\n",
            gw.url()
        ),
    );
    let agent = Agent::start(&cfg, port, &[]);
    let oc = || get(&agent.url("/api/status")).unwrap().1["connections"]["openclaw"].clone();
    let st = eventually(60, "the node connects", || {
        Some(oc()).filter(|o| o["connected"] == true)
    });
    let device = st["device_id"].as_str().unwrap().to_string();
    let mut op = Operator::connect(&gw.url(), GATEWAY_TOKEN);
    op.approve(&device);
    let first = eventually(30, "an invoke after approval", || {
        op.invoke_keyed(&device, "smollama.sources.list", json!({}), "retry-me")
            .ok()
    });

    // The slow recall, from a second operator on its own thread.
    let before = asked.load(Ordering::SeqCst);
    let url = gw.url();
    let dev = device.clone();
    let slow = std::thread::spawn(move || {
        let mut op2 = Operator::connect(&url, GATEWAY_TOKEN);
        let t = Instant::now();
        let r = op2.invoke(&dev, "smollama.recall", json!({"query": "uptime"}));
        (r, t.elapsed())
    });
    // Once the recall is running (its embedding request has reached the hung server)...
    eventually(10, "the recall waits for its embedding", || {
        (asked.load(Ordering::SeqCst) > before).then_some(())
    });
    // ...the retry is answered from what the node remembers, long before the recall ends.
    let t = Instant::now();
    let again = op
        .invoke_keyed(&device, "smollama.sources.list", json!({}), "retry-me")
        .expect("the retry");
    let took = t.elapsed();
    assert_eq!(again, first, "the same result");
    let (recall, recall_took) = slow.join().unwrap();
    let recall: Value =
        recall.expect("the recall answers (by words) after the embedding timed out");
    assert!(recall.is_object(), "{recall}");
    assert!(
        recall_took >= Duration::from_secs(HANG_S - 1),
        "the recall waited for its embedding ({recall_took:?})"
    );
    assert!(
        took < Duration::from_secs(HANG_S / 2),
        "the retry took {took:?} while the recall ran ({recall_took:?})"
    );
    eprintln!("retry answered in {took:?} while a recall ran {recall_took:?}");
}
