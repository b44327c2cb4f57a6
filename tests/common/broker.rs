//! A real MQTT broker for tests: Debian's mosquitto, started on a free loopback port with
//! its own config and persistence directory, stoppable and restartable (outage tests).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, Incoming, MqttOptions, QoS};

pub struct Broker {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

fn mosquitto() -> PathBuf {
    for p in [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ] {
        if std::path::Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!(
        "mosquitto is not installed: the MQTT tests need a real broker \
         (Debian: apt-get install mosquitto; ./scripts/test installs it when run as root)"
    );
}

impl Broker {
    pub fn start(dir: &std::path::Path) -> Broker {
        let port = super::free_port();
        let dir = dir.join("broker");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("mosquitto.conf"),
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
                 persistence_location {}/\nautosave_interval 1\nmax_queued_messages 100000\n\
                 log_dest stderr\nlog_type error\n",
                dir.display()
            ),
        )
        .unwrap();
        let mut b = Broker {
            port,
            dir,
            child: None,
        };
        b.resume();
        b
    }

    /// (Re)start on the same port and persistence directory.
    pub fn resume(&mut self) {
        let child = Command::new(mosquitto())
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop cleanly (SIGTERM: mosquitto saves its persistent sessions).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let _ = c.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A test subscriber with a persistent session (QoS 1), so messages published while it
/// is reconnecting after a broker restart are kept for it.
/// A received message: topic, payload, retained flag.
pub type Received = (String, Vec<u8>, bool);

pub struct Subscriber {
    pub messages: Arc<Mutex<Vec<Received>>>,
    /// Successful (re)connections, so a test can wait for the subscriber to be back.
    pub connects: Arc<std::sync::atomic::AtomicUsize>,
    client: Client,
}

impl Subscriber {
    pub fn new(port: u16, id: &str, filters: &[&str]) -> Subscriber {
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        opts.set_clean_session(false)
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut conn) = Client::new(opts, 100);
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = messages.clone();
        let connects = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let connects2 = connects.clone();
        let filters: Vec<String> = filters.iter().map(|s| s.to_string()).collect();
        let sub = client.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut first = Some(ready_tx);
            loop {
                match conn.recv() {
                    Ok(Ok(Event::Incoming(Incoming::ConnAck(_)))) => {
                        connects2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        for f in &filters {
                            let _ = sub.try_subscribe(f.clone(), QoS::AtLeastOnce);
                        }
                    }
                    Ok(Ok(Event::Incoming(Incoming::SubAck(_)))) => {
                        if let Some(tx) = first.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Ok(Event::Incoming(Incoming::Publish(p)))) => {
                        sink.lock()
                            .unwrap()
                            .push((p.topic.clone(), p.payload.to_vec(), p.retain));
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => std::thread::sleep(Duration::from_millis(100)),
                    Err(_) => return,
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("subscriber connected");
        Subscriber {
            messages,
            connects,
            client,
        }
    }

    pub fn on(&self, topic: &str) -> Vec<serde_json::Value> {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _, _)| t == topic)
            .filter_map(|(_, p, _)| serde_json::from_slice(p).ok())
            .collect()
    }

    pub fn raw(&self, topic: &str) -> Vec<Vec<u8>> {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _, _)| t == topic)
            .map(|(_, p, _)| p.clone())
            .collect()
    }

    pub fn topics(&self) -> Vec<String> {
        let mut t: Vec<String> = self
            .messages
            .lock()
            .unwrap()
            .iter()
            .map(|(t, _, _)| t.clone())
            .collect();
        t.sort();
        t.dedup();
        t
    }

    pub fn publish(&self, topic: &str, payload: &[u8], retain: bool) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload.to_vec())
            .unwrap();
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.client.try_disconnect();
    }
}

/// A TCP relay in front of the broker that the test can cut and restore: an outage seen
/// only by the agent, while the test's subscriber stays connected to the broker itself
/// (so what the subscriber sees does not depend on the broker persisting sessions).
///
/// `stall` stands in for a link that died without a reset (Wi-Fi gone): the connection
/// stays open but nothing moves, so the agent's writes fill the socket and then back up
/// into its own queues, until `unstall`.
pub struct Relay {
    pub port: u16,
    /// TCP connections accepted, refused ones while cut included: connection attempts.
    pub accepted: Arc<std::sync::atomic::AtomicUsize>,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    flowing: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<Mutex<Vec<std::net::TcpStream>>>,
}

impl Relay {
    pub fn start(broker_port: u16) -> Relay {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        // A small receive buffer (inherited by accepted sockets), so a stall backs up
        // into the agent after kilobytes rather than the megabytes loopback would buffer.
        {
            use std::os::fd::AsRawFd;
            let size: libc::c_int = 64 * 1024;
            // SAFETY: a valid socket and an int option of the right size.
            unsafe {
                libc::setsockopt(
                    listener.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUF,
                    (&size as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let flowing = Arc::new(AtomicBool::new(true));
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let conns: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let (up2, conns2, flowing2, accepted2) =
            (up.clone(), conns.clone(), flowing.clone(), accepted.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                accepted2.fetch_add(1, Ordering::SeqCst);
                if !up2.load(Ordering::SeqCst) {
                    drop(client); // refused while cut
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", broker_port)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                for s in [&client, &server] {
                    if let Ok(c) = s.try_clone() {
                        conns2.lock().unwrap().push(c);
                    }
                }
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let flowing = flowing2.clone();
                    std::thread::spawn(move || {
                        use std::io::{Read, Write};
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            while !flowing.load(Ordering::SeqCst) {
                                std::thread::sleep(Duration::from_millis(10));
                            }
                            let n = match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            while !flowing.load(Ordering::SeqCst) {
                                std::thread::sleep(Duration::from_millis(10));
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Relay {
            port,
            accepted,
            up,
            flowing,
            conns,
        }
    }

    /// Stop moving bytes either way, keeping the connections open.
    pub fn stall(&self) {
        self.flowing
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn unstall(&self) {
        self.flowing
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Cut every connection and refuse new ones.
    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// (source, time to the millisecond) of every reading in the batch messages `sub`
/// received on `smollama/test-node/readings`, in arrival order (re-sends included).
pub fn readings_received(sub: &Subscriber) -> Vec<(String, String)> {
    sub.on("smollama/test-node/readings")
        .iter()
        .flat_map(|b| b["readings"].as_array().unwrap().clone())
        .map(|r| {
            (
                r["source"].as_str().unwrap().to_string(),
                r["ts"].as_str().unwrap()[..23].to_string(),
            )
        })
        .collect()
}

/// Every reading the store holds for `id` as (id, time to the millisecond, the MQTT
/// payload's format), oldest first (the history API answers newest first).
pub fn readings_stored(agent: &super::Agent, id: &str) -> Vec<(String, String)> {
    let (_, h) = super::get(&agent.url(&format!(
        "/api/readings/{id}/history?minutes=60&limit=100000"
    )))
    .unwrap();
    let mut v: Vec<(String, String)> = h["readings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                id.to_string(),
                r["timestamp"].as_str().unwrap()[..23].to_string(),
            )
        })
        .collect();
    v.reverse();
    v
}

/// A pipeline of other nodes' readings straight into the store (no retention stage:
/// raw history).
pub const MQTT_TO_STORE: &str = r#"
[[source]]
name = "nodes"
kind = "mqtt"
topics = ["smollama/+/readings"]

[[sink]]
name = "store"
kind = "store"
from = ["nodes"]
"#;
