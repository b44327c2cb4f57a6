//! `smollama nodes`' text form: one line per node from `/api/nodes`' JSON.

use serde_json::Value as Json;

/// The table: name, role, health, address, last seen (seconds ago), how learned.
pub fn table(v: &Json) -> String {
    let nodes = v["nodes"].as_array().map_or(&[][..], |n| n.as_slice());
    let mut rows = vec![[
        "NODE".to_string(),
        "ROLE".into(),
        "HEALTH".into(),
        "ADDRESS".into(),
        "LAST SEEN".into(),
        "VIA".into(),
        "VERSION".into(),
    ]];
    for n in nodes {
        let s = |k: &str| n[k].as_str().unwrap_or("-").to_string();
        let address = match (n["addresses"].as_array(), n["port"].as_u64()) {
            (Some(a), Some(port)) if !a.is_empty() => {
                let first = a[0].as_str().unwrap_or("");
                let more = if a.len() > 1 {
                    format!(" (+{})", a.len() - 1)
                } else {
                    String::new()
                };
                if first.contains(':') {
                    format!("[{first}]:{port}{more}")
                } else {
                    format!("{first}:{port}{more}")
                }
            }
            _ => "-".into(),
        };
        let seen = n["seen_s_ago"].as_i64().map_or("-".into(), ago);
        let via = n["via"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter_map(Json::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let name = if n["self"] == true {
            format!("{} (this node)", s("name"))
        } else {
            s("name")
        };
        rows.push([
            name,
            s("node_type"),
            s("health"),
            address,
            seen,
            via,
            s("version"),
        ]);
    }
    let mut widths = [0usize; 7];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, (c, w)) in r.iter().zip(widths).enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let c = &v["counts"];
    out.push_str(&format!(
        "{} other nodes known: {} active, {} stale, {} offline\n",
        c["known"], c["active"], c["stale"], c["offline"]
    ));
    out
}

fn ago(s: i64) -> String {
    match s {
        i64::MIN..=1 => "just now".into(),
        2..=119 => format!("{s}s ago"),
        120..=7199 => format!("{}m ago", s / 60),
        _ => format!("{}h ago", s / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_a_line_per_node_and_the_counts() {
        let v = serde_json::json!({
            "nodes": [
                {"name": "me", "self": true, "node_type": "llama", "health": "active",
                 "addresses": ["10.77.0.1"], "port": 8080, "via": ["self"],
                 "seen_s_ago": 0, "version": "0.1.0"},
                {"name": "garage", "self": false, "node_type": null, "health": "stale",
                 "addresses": [], "port": null, "via": ["mqtt"],
                 "seen_s_ago": 180, "version": null},
            ],
            "counts": {"known": 1, "active": 0, "stale": 1, "offline": 0},
        });
        let t = table(&v);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        assert!(
            lines[1].starts_with("me (this node)") && lines[1].contains("10.77.0.1:8080"),
            "{t}"
        );
        assert!(
            lines[2].contains("garage")
                && lines[2].contains("stale")
                && lines[2].contains("3m ago"),
            "{t}"
        );
        assert!(
            lines[3].contains("1 other nodes known: 0 active, 1 stale"),
            "{t}"
        );
    }
}
