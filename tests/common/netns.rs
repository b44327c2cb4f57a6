//! Test hosts in network namespaces (`ip netns`, from iproute2), joined by veth pairs the
//! test creates: several machines on one LAN without a packet leaving this one. Needs
//! root; where namespaces cannot be made, [`Namespaces::new`] says why and the test skips.
//!
//! `common::netns`, for the tests that need several hosts.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::BIN;

/// Namespaces, each with loopback up; all removed on drop.
pub struct Namespaces {
    pub names: Vec<String>,
}

/// Run `ip ARGS`, failing the test with ip's own words when it fails.
pub fn ip(args: &[&str]) {
    let o = Command::new("ip").args(args).output().unwrap();
    assert!(
        o.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
}

impl Namespaces {
    /// `None` (after saying why) when network namespaces cannot be made here.
    pub fn new(names: &[String]) -> Option<Namespaces> {
        match Command::new("ip")
            .args(["netns", "add", &names[0]])
            .output()
        {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                eprintln!(
                    "SKIPPED: `ip netns add` is not permitted here ({}); this test needs root and network namespaces",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                return None;
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run `ip` ({e}); install iproute2");
                return None;
            }
        }
        let ns = Namespaces {
            names: names.to_vec(),
        };
        for n in &names[1..] {
            ip(&["netns", "add", n]);
        }
        for n in names {
            ip(&["-n", n, "link", "set", "lo", "up"]);
        }
        Some(ns)
    }

    /// Join namespaces `a` and `b` (indices) with a veth pair named `veth`, addresses
    /// `{subnet}.1/24` and `{subnet}.2/24`, multicast on and routed (mDNS). With
    /// `bridge_a`, a's end is enslaved to a bridge of that name that holds the address
    /// (as a LAN's `eth0` would: some mDNS responders skip interfaces named `x@ifN`).
    pub fn link(&self, a: usize, b: usize, veth: [&str; 2], subnet: &str, bridge_a: Option<&str>) {
        let (na, nb) = (&self.names[a], &self.names[b]);
        ip(&[
            "link", "add", veth[0], "type", "veth", "peer", "name", veth[1],
        ]);
        ip(&["link", "set", veth[0], "netns", na]);
        ip(&["link", "set", veth[1], "netns", nb]);
        let dev_a = match bridge_a {
            Some(br) => {
                ip(&["-n", na, "link", "add", br, "type", "bridge"]);
                ip(&["-n", na, "link", "set", veth[0], "master", br]);
                ip(&["-n", na, "link", "set", veth[0], "up"]);
                br
            }
            None => veth[0],
        };
        for (i, (ns, dev)) in [(na, dev_a), (nb, veth[1])].into_iter().enumerate() {
            let addr = format!("{subnet}.{}/24", i + 1);
            ip(&["-n", ns, "addr", "add", &addr, "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up", "multicast", "on"]);
            ip(&["-n", ns, "route", "add", "224.0.0.0/4", "dev", dev]);
        }
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

/// The real binary running in a namespace, its stderr collected; killed on drop.
pub struct NsNode {
    pub ns: String,
    pub cfg: PathBuf,
    pub child: Child,
    log: Arc<Mutex<String>>,
}

impl NsNode {
    pub fn start(ns: &str, cfg: &Path) -> NsNode {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, BIN, "--config"])
            .arg(cfg)
            .env_remove("SMOLLAMA_CONFIG")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        NsNode {
            ns: ns.to_string(),
            cfg: cfg.to_path_buf(),
            child,
            log,
        }
    }

    /// `smollama ARGS --json`, run in the node's namespace, parsed; `None` when it fails.
    pub fn cli_json(&self, args: &[&str]) -> Option<Value> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, BIN, "--config"])
            .arg(&self.cfg)
            .args(args)
            .arg("--json")
            .env_remove("RUST_LOG")
            .output()
            .ok()?;
        if !out.status.success() && out.stdout.is_empty() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn signal(&mut self, sig: i32) {
        // `ip netns exec` execs the binary: the child's pid is the node's.
        unsafe { libc::kill(self.child.id() as i32, sig) };
        let _ = self.child.wait();
    }
}

impl Drop for NsNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
