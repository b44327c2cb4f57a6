//! MQTT publish throughput through smollama's MQTT worker (outbox for QoS 1) to a real
//! local mosquitto, confirmed by a subscriber. Run: `cargo bench --bench mqtt`
//! (needs /usr/sbin/mosquitto). `SMOLLAMA_BENCH_N` sets the message count.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use smollama::config::Settings;
use smollama::edges::gpio::mock::MockGpio;
use smollama::edges::mqtt::connection::{self, Parts};
use smollama::graph::registry::Registry;
use smollama::messages::Publish;
use smollama::store::{Store, StoreOptions};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Count messages with Debian's mosquitto_sub (an independent client) when it is there,
/// else with a rumqttc subscriber.
fn subscriber(port: u16, count: Arc<AtomicU64>) -> std::process::Child {
    use std::io::BufRead;
    let mut child = Command::new("mosquitto_sub")
        .args(["-p", &port.to_string(), "-t", "bench/#", "-q", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto_sub (Debian: apt-get install mosquitto-clients)");
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for _ in std::io::BufReader::new(out).lines() {
            count.fetch_add(1, Ordering::Relaxed);
        }
    });
    std::thread::sleep(Duration::from_millis(300)); // let it subscribe
    child
}

fn run(qos: u8, n: u64, port: u16, dir: &std::path::Path) -> f64 {
    let _ = std::fs::remove_dir_all(dir);
    let mut settings = Settings::defaults();
    settings.node.name = format!("bench{qos}");
    settings.node.data_dir = dir.to_path_buf();
    settings.mqtt.broker = Some("127.0.0.1".into());
    settings.mqtt.port = port;
    settings.mqtt.discovery = false;
    let store = Arc::new(Store::open(&dir.join("store"), &StoreOptions::default()).unwrap());
    let received = Arc::new(AtomicU64::new(0));
    let mut sub = subscriber(port, received.clone());
    let gpio = Arc::new(MockGpio::new(&settings.gpio));
    let (tx, rx) = smollama::messages::publish_queue(
        connection::PUBLISH_QUEUE,
        settings.mqtt.publish_queue_kb << 10,
    );
    let handle = connection::start(
        Parts {
            settings: settings.clone(),
            store,
            registry: Arc::new(Registry::new()),
            gpio,
            subscriptions: Vec::new(),
            discovery: Vec::new(),
            questions: None,
            recent: Default::default(),
            events: None,
            sync: None,
            nodes: None,
            beside: None,
        },
        (tx.clone(), rx),
    )
    .unwrap();
    while handle.stats.connects.load(Ordering::Relaxed) == 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    // A reading-sized payload, as a state sink sends.
    let payload = br#"{"value":48.25,"unit":"celsius","time":"2026-11-27T09:28:43.120000+00:00"}"#;
    let t0 = Instant::now();
    for i in 0..n {
        smol::block_on(tx.send(Publish {
            topic: format!("bench/{}", i % 10),
            payload: payload.to_vec(),
            qos,
            retain: false,
        }))
        .unwrap();
    }
    eprintln!("  queued all {n} in {:.2}s", t0.elapsed().as_secs_f64());
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut acked_at = None;
    while received.load(Ordering::Relaxed) < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
        let done = if qos == 0 {
            handle.stats.messages_out.load(Ordering::Relaxed) >= n
        } else {
            handle.stats.acked.load(Ordering::Relaxed) >= n
        };
        if done && acked_at.is_none() {
            acked_at = Some(t0.elapsed().as_secs_f64());
            eprintln!("  all handed over/acked after {:.3}s", acked_at.unwrap());
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let got = received.load(Ordering::Relaxed);
    eprintln!(
        "  out {} acked {} in {:.2}s",
        handle.stats.messages_out.load(Ordering::Relaxed),
        handle.stats.acked.load(Ordering::Relaxed),
        secs
    );
    let dropped = handle.stats.dropped_qos0.load(Ordering::Relaxed);
    handle.stop();
    let _ = sub.kill();
    let _ = sub.wait();
    println!(
        "mqtt_publish_qos{qos}: {:.0} messages/s ({got}/{n} received, {dropped} dropped)",
        got as f64 / secs
    );
    got as f64 / secs
}

fn main() {
    let n: u64 = std::env::var("SMOLLAMA_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("smollama-bench-mqtt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("m.conf"),
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\nmax_queued_messages 1000000\nmax_inflight_messages 0\n"),
    )
    .unwrap();
    let mut broker = Command::new("/usr/sbin/mosquitto")
        .arg("-c")
        .arg(dir.join("m.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    run(0, n, port, &dir.join("q0"));
    run(1, n, port, &dir.join("q1"));
    let _ = broker.kill();
    let _ = broker.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
