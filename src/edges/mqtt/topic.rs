//! MQTT topic names and filters: validation, matching, templates.
//!
//! Pure functions; the connection code and the config validator both use them, so a bad
//! topic is reported when the config is loaded rather than when the broker drops us.

/// The protocol's limit on a topic's length in bytes (a two-byte length prefix).
pub const MAX_TOPIC_LEN: usize = 65_535;

/// Checks a topic name we publish to: non-empty, at most `max_len` bytes, no wildcards
/// (`+`, `#`) and no NUL.
pub fn validate_topic(t: &str, max_len: usize) -> Result<(), String> {
    if t.is_empty() {
        return Err("topic is empty".into());
    }
    if t.len() > max_len {
        return Err(format!(
            "topic is {} bytes, more than the limit of {max_len}",
            t.len()
        ));
    }
    if t.contains('\0') {
        return Err(format!("topic {t:?} contains a NUL character"));
    }
    if t.contains('+') || t.contains('#') {
        return Err(format!(
            "topic {t:?} contains a wildcard ('+' or '#'); wildcards are only allowed in subscriptions"
        ));
    }
    Ok(())
}

/// Checks a subscription filter: non-empty, at most [`MAX_TOPIC_LEN`] bytes, no NUL,
/// `+` only as a whole level and `#` only as the whole last level.
pub fn validate_filter(f: &str) -> Result<(), String> {
    if f.is_empty() {
        return Err("filter is empty".into());
    }
    if f.len() > MAX_TOPIC_LEN {
        return Err(format!(
            "filter is {} bytes, more than the limit of {MAX_TOPIC_LEN}",
            f.len()
        ));
    }
    if f.contains('\0') {
        return Err(format!("filter {f:?} contains a NUL character"));
    }
    let levels: Vec<&str> = f.split('/').collect();
    let last = levels.len() - 1;
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i != last) {
            return Err(format!(
                "filter {f:?}: '#' must be a whole level and the last one (e.g. \"home/#\")"
            ));
        }
        if level.contains('+') && *level != "+" {
            return Err(format!(
                "filter {f:?}: '+' must be a whole level (e.g. \"home/+/temp\")"
            ));
        }
    }
    Ok(())
}

/// Whether `topic` matches the subscription `filter` under MQTT rules: `+` matches
/// exactly one level (possibly empty), `#` matches the parent level and any number of
/// levels below it, and a wildcard in the first level never matches a topic starting with
/// `$` (broker-internal topics such as `$SYS/...`). The filter is assumed valid
/// (see [`validate_filter`]).
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Replaces `{name}` placeholders in `template` with values from `vars`. An unknown
/// placeholder, an empty `{}` or an unbalanced brace is an error naming it. There is no
/// escape for literal braces (they have no use in topics). Values are inserted verbatim:
/// pass them through [`topic_segment`] first when they must stay one level.
pub fn expand(template: &str, vars: &[(&str, &str)]) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            return Err(format!(
                "unbalanced '}}' at byte {} in {template:?}",
                template.len() - rest.len() + open
            ));
        }
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = match after.find(['{', '}']) {
            Some(i) if after.as_bytes()[i] == b'}' => i,
            _ => {
                return Err(format!(
                    "unclosed '{{' at byte {} in {template:?}",
                    template.len() - rest.len() + open
                ));
            }
        };
        let name = &after[..close];
        match vars.iter().find(|(k, _)| *k == name) {
            Some((_, v)) => out.push_str(v),
            None => {
                let known: Vec<String> = vars.iter().map(|(k, _)| format!("{{{k}}}")).collect();
                return Err(format!(
                    "unknown placeholder {{{name}}} in {template:?} (known: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ));
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Splits a full source id at its first colon: `system:cpu_temp` -> (`system`,
/// `cpu_temp`), `node:system:cpu_temp` -> (`node`, `system:cpu_temp`); without a colon
/// the prefix is empty: `uptime` -> (``, `uptime`).
pub fn split_source(full_id: &str) -> (&str, &str) {
    match full_id.split_once(':') {
        Some((a, b)) => (a, b),
        None => ("", full_id),
    }
}

/// Makes `s` safe as exactly one topic level: `/`, `+`, `#`, `:`, NUL and whitespace
/// become `_`. `:` is replaced too (not mapped to `/`), so a source id such as
/// `system:cpu_temp` stays one level (`system_cpu_temp`) and the level count of a
/// templated topic never depends on the source name. A leading `$` becomes `_` (topics
/// starting with `$` are reserved for the broker), and an empty string becomes `_`.
pub fn topic_segment(s: &str) -> String {
    if s.is_empty() {
        return "_".into();
    }
    s.chars()
        .enumerate()
        .map(|(i, c)| match c {
            '/' | '+' | '#' | ':' | '\0' => '_',
            '$' if i == 0 => '_',
            c if c.is_whitespace() => '_',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_validate() {
        assert!(validate_topic("smollama/kitchen/readings", 100).is_ok());
        assert!(validate_topic("a", 1).is_ok());
        assert!(validate_topic("/", 10).is_ok());
        assert!(validate_topic("", 10).unwrap_err().contains("empty"));
        assert!(validate_topic("abcdef", 5).unwrap_err().contains("6 bytes"));
        assert!(
            validate_topic("a/+/b", 100)
                .unwrap_err()
                .contains("wildcard")
        );
        assert!(validate_topic("a/#", 100).unwrap_err().contains("wildcard"));
        assert!(validate_topic("a\0b", 100).unwrap_err().contains("NUL"));
        // Bytes, not chars.
        assert!(validate_topic("é", 1).is_err());
    }

    #[test]
    fn filters_validate() {
        for ok in [
            "#", "+", "a/#", "a/+/b", "+/+", "/+", "a//b", "$SYS/#", "a/b",
        ] {
            assert!(validate_filter(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "a#", "a/#/b", "#/a", "a/b#", "a+", "a/+b/c", "a/b+", "x\0",
        ] {
            assert!(validate_filter(bad).is_err(), "{bad}");
        }
        assert!(validate_filter("a/#/b").unwrap_err().contains("'#'"));
        assert!(validate_filter("a/b+").unwrap_err().contains("'+'"));
        assert!(validate_filter(&"a".repeat(MAX_TOPIC_LEN + 1)).is_err());
    }

    #[test]
    fn matching_follows_mqtt_rules() {
        let yes = [
            ("a/b", "a/b"),
            ("+/b", "a/b"),
            ("a/+", "a/b"),
            ("a/+", "a/"),
            ("+", ""),
            ("#", "a/b/c"),
            ("#", "a"),
            ("a/#", "a"),
            ("a/#", "a/b/c"),
            ("a/+/c", "a/b/c"),
            ("+/+", "/x"),
            ("/+", "/x"),
            ("$SYS/#", "$SYS/broker/uptime"),
            ("$SYS/+", "$SYS/x"),
            ("smollama/+/readings", "smollama/kitchen/readings"),
        ];
        for (f, t) in yes {
            assert!(matches(f, t), "{f} should match {t}");
        }
        let no = [
            ("a/b", "a/c"),
            ("a/b", "a/b/c"),
            ("a/b/c", "a/b"),
            ("a/+", "a"),
            ("a/+", "a/b/c"),
            ("+", "a/b"),
            ("+", "/x"),
            ("#", "$SYS/x"),
            ("+/x", "$SYS/x"),
            ("+/#", "$x"),
            ("a/#", "b"),
            ("A/b", "a/b"),
        ];
        for (f, t) in no {
            assert!(!matches(f, t), "{f} should not match {t}");
        }
    }

    #[test]
    fn templates_expand() {
        let vars = [("prefix", "smollama"), ("node", "kitchen"), ("id", "x_y")];
        assert_eq!(
            expand("{prefix}/{node}/readings", &vars).unwrap(),
            "smollama/kitchen/readings"
        );
        assert_eq!(expand("{id}{id}", &vars).unwrap(), "x_yx_y");
        assert_eq!(expand("plain/topic", &vars).unwrap(), "plain/topic");
        assert_eq!(expand("", &vars).unwrap(), "");
        assert_eq!(expand("é/{node}/ü", &vars).unwrap(), "é/kitchen/ü");

        let e = expand("{prefix}/{type}/x", &vars).unwrap_err();
        assert!(e.contains("{type}"), "{e}");
        assert!(e.contains("{prefix}"), "{e}");
        assert!(expand("{}", &vars).unwrap_err().contains("{}"));
        assert!(expand("a/{node", &vars).unwrap_err().contains("unclosed"));
        assert!(expand("a/{no{de}", &vars).unwrap_err().contains("unclosed"));
        assert!(expand("a/node}", &vars).unwrap_err().contains("unbalanced"));
        assert!(expand("{x}", &[]).unwrap_err().contains("known: none"));
    }

    #[test]
    fn sources_split_at_first_colon() {
        assert_eq!(split_source("system:cpu_temp"), ("system", "cpu_temp"));
        assert_eq!(
            split_source("node:system:cpu_temp"),
            ("node", "system:cpu_temp")
        );
        assert_eq!(split_source("uptime"), ("", "uptime"));
        assert_eq!(split_source(":x"), ("", "x"));
        assert_eq!(split_source("x:"), ("x", ""));
    }

    #[test]
    fn segments_are_one_level() {
        assert_eq!(topic_segment("system:cpu_temp"), "system_cpu_temp");
        assert_eq!(topic_segment("a/b+c#d e\tf\0g"), "a_b_c_d_e_f_g");
        assert_eq!(topic_segment("$SYS"), "_SYS");
        assert_eq!(topic_segment("a$b"), "a$b");
        assert_eq!(topic_segment(""), "_");
        assert_eq!(topic_segment("küche"), "küche");
        let s = topic_segment("gpio:17 / door#1");
        assert!(validate_topic(&s, 100).is_ok());
        assert!(!s.contains('/'));
    }
}
