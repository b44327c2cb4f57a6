//! Argument validation against a tool's JSON schema (the small subset tools use).
//!
//! Models are sloppy with arguments, so validation is lenient where the intent is clear
//! and strict where it is not:
//! - the arguments may be an object, a JSON string holding an object, or `null`/`""`
//!   (no arguments);
//! - a property given as `null` counts as absent;
//! - `integer` accepts a whole float (`10.0`) and a numeric string (`"10"`), saturating
//!   at the `i64` range (tools clamp further);
//! - `number` accepts a numeric string;
//! - `string` accepts a number or boolean (`{"pin": 17}` means `"17"`);
//! - a string `enum` matches case-insensitively and is normalised to its listed spelling;
//!   `x-aliases` lists further accepted spellings that are not advertised (keys starting
//!   with `x-` are stripped from what the model sees);
//! - unknown properties are ignored.
//!
//! A violation is `argument '<name>': <what>`.

use serde_json::{Map, Value as Json};

/// Check `args` against `schema` and return the normalised argument object.
pub fn validate(schema: &Json, args: &Json) -> Result<Map<String, Json>, String> {
    let mut obj = as_object(args)?;
    let props = schema.get("properties").and_then(Json::as_object);
    // Null-valued properties are treated as absent.
    obj.retain(|_, v| !v.is_null());
    if let Some(required) = schema.get("required").and_then(Json::as_array) {
        for name in required.iter().filter_map(Json::as_str) {
            if !obj.contains_key(name) {
                return Err(format!("argument '{name}': required but missing"));
            }
        }
    }
    if let Some(props) = props {
        for (name, prop) in props {
            if let Some(v) = obj.get_mut(name) {
                check_property(prop, v).map_err(|e| format!("argument '{name}': {e}"))?;
            }
        }
    }
    Ok(obj)
}

/// The schema as the model should see it: `x-` extension keys removed.
pub fn public_schema(schema: &Json) -> Json {
    match schema {
        Json::Object(m) => Json::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with("x-"))
                .map(|(k, v)| (k.clone(), public_schema(v)))
                .collect(),
        ),
        Json::Array(a) => Json::Array(a.iter().map(public_schema).collect()),
        other => other.clone(),
    }
}

fn as_object(args: &Json) -> Result<Map<String, Json>, String> {
    match args {
        Json::Object(m) => Ok(m.clone()),
        Json::Null => Ok(Map::new()),
        Json::String(s) if s.trim().is_empty() => Ok(Map::new()),
        Json::String(s) => match serde_json::from_str::<Json>(s) {
            Ok(Json::Object(m)) => Ok(m),
            Ok(other) => Err(format!(
                "arguments must be a JSON object, got a string holding {}",
                type_name(&other)
            )),
            Err(e) => Err(format!(
                "arguments must be a JSON object, got a string that is not JSON ({e})"
            )),
        },
        other => Err(format!(
            "arguments must be a JSON object, got {}",
            type_name(other)
        )),
    }
}

fn type_name(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(n) if n.is_f64() => "a number",
        Json::Number(_) => "an integer",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// Check (and coerce in place) one property value.
fn check_property(prop: &Json, v: &mut Json) -> Result<(), String> {
    let ty = prop.get("type").and_then(Json::as_str).unwrap_or("");
    let coerced = match ty {
        "string" => match &*v {
            Json::String(_) => None,
            Json::Number(n) => Some(Json::String(n.to_string())),
            Json::Bool(b) => Some(Json::String(b.to_string())),
            other => return Err(format!("expected a string, got {}", type_name(other))),
        },
        "integer" => Some(Json::from(as_integer(v)?)),
        "number" => match &*v {
            Json::Number(_) => None,
            Json::String(s) => match s.trim().parse::<f64>() {
                Ok(x) if x.is_finite() => Some(Json::from(x)),
                _ => return Err(format!("expected a number, got {s:?}")),
            },
            other => return Err(format!("expected a number, got {}", type_name(other))),
        },
        "boolean" => match &*v {
            Json::Bool(_) => None,
            other => return Err(format!("expected a boolean, got {}", type_name(other))),
        },
        "array" => match &*v {
            Json::Array(_) => None,
            other => return Err(format!("expected an array, got {}", type_name(other))),
        },
        "object" => match &*v {
            Json::Object(_) => None,
            other => return Err(format!("expected an object, got {}", type_name(other))),
        },
        _ => None,
    };
    if let Some(c) = coerced {
        *v = c;
    }
    if let Some(allowed) = prop.get("enum").and_then(Json::as_array) {
        check_enum(prop, allowed, v)?;
    }
    Ok(())
}

fn check_enum(prop: &Json, allowed: &[Json], v: &mut Json) -> Result<(), String> {
    if let Json::String(s) = &*v {
        let s = s.trim();
        if let Some(canon) = allowed
            .iter()
            .filter_map(Json::as_str)
            .find(|a| a.eq_ignore_ascii_case(s))
        {
            *v = Json::String(canon.to_string());
            return Ok(());
        }
        let aliases = prop.get("x-aliases").and_then(Json::as_array);
        if aliases.is_some_and(|a| {
            a.iter()
                .filter_map(Json::as_str)
                .any(|a| a.eq_ignore_ascii_case(s))
        }) {
            return Ok(());
        }
    } else if allowed.contains(v) {
        return Ok(());
    }
    let list: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
    Err(format!("{v} is not one of {}", list.join(", ")))
}

/// An integer from a JSON integer, a whole float or a numeric string; saturating.
fn as_integer(v: &Json) -> Result<i64, String> {
    let from_f64 = |x: f64| -> Result<i64, String> {
        if !x.is_finite() || x.fract() != 0.0 {
            return Err(format!("expected an integer, got {x}"));
        }
        // `as` saturates at the i64 range.
        Ok(x as i64)
    };
    match v {
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i)
            } else if n.as_u64().is_some() {
                Ok(i64::MAX)
            } else {
                from_f64(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => {
            let t = s.trim();
            if let Ok(i) = t.parse::<i64>() {
                Ok(i)
            } else if let Ok(x) = t.parse::<f64>() {
                from_f64(x).map_err(|_| format!("expected an integer, got {s:?}"))
            } else {
                Err(format!("expected an integer, got {s:?}"))
            }
        }
        other => Err(format!("expected an integer, got {}", type_name(other))),
    }
}

/// The validated arguments as a map (empty when not an object).
pub(crate) fn args_obj(args: &Json) -> Map<String, Json> {
    args.as_object().cloned().unwrap_or_default()
}

/// A number argument of an already validated object.
pub(crate) fn num_arg(args: &Map<String, Json>, name: &str) -> Option<f64> {
    args.get(name).and_then(Json::as_f64)
}

/// A string argument of an already validated object.
pub(crate) fn str_arg<'a>(args: &'a Map<String, Json>, name: &str) -> Option<&'a str> {
    args.get(name).and_then(Json::as_str)
}

/// An integer argument of an already validated object.
pub(crate) fn int_arg(args: &Map<String, Json>, name: &str) -> Option<i64> {
    args.get(name).and_then(Json::as_i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Json {
        json!({
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "n": {"type": "integer"},
                "x": {"type": "number"},
                "b": {"type": "boolean"},
                "list": {"type": "array"},
                "state": {"type": "string", "enum": ["HIGH", "LOW"], "x-aliases": ["on", "off"]},
            },
            "required": ["id"],
        })
    }

    #[test]
    fn accepts_and_coerces() {
        let s = schema();
        let a = validate(
            &s,
            &json!({"id": 17, "n": "10", "x": "2.5", "b": true, "list": [1], "state": "high", "extra": 1}),
        )
        .unwrap();
        assert_eq!(a["id"], json!("17"));
        assert_eq!(a["n"], json!(10));
        assert_eq!(a["x"], json!(2.5));
        assert_eq!(a["state"], json!("HIGH"));
        assert_eq!(a["extra"], json!(1), "unknown properties pass through");
        let a = validate(&s, &json!({"id": "a", "n": 12.0, "state": "ON"})).unwrap();
        assert_eq!(a["n"], json!(12));
        assert_eq!(a["state"], json!("ON"), "aliases are accepted as given");
        let a = validate(&s, &json!({"id": "a", "n": null})).unwrap();
        assert!(!a.contains_key("n"), "null counts as absent");
    }

    #[test]
    fn arguments_as_a_string() {
        let s = schema();
        let a = validate(&s, &json!("{\"id\": \"x\", \"n\": 3}")).unwrap();
        assert_eq!((a["id"].as_str(), a["n"].as_i64()), (Some("x"), Some(3)));
        assert!(validate(&s, &json!("[1]")).is_err());
        assert!(validate(&s, &json!("not json")).is_err());
        let none = json!({"type": "object", "properties": {}});
        assert!(validate(&none, &Json::Null).unwrap().is_empty());
        assert!(validate(&none, &json!("")).unwrap().is_empty());
        assert!(validate(&none, &json!([])).is_err());
        assert!(validate(&none, &json!(3)).is_err());
    }

    #[test]
    fn violations() {
        let s = schema();
        let e = |args: Json| validate(&s, &args).unwrap_err();
        assert_eq!(e(json!({})), "argument 'id': required but missing");
        assert_eq!(
            e(json!({"id": null})),
            "argument 'id': required but missing"
        );
        assert!(e(json!({"id": [1]})).starts_with("argument 'id': expected a string"));
        assert!(e(json!({"id": "a", "n": "ten"})).starts_with("argument 'n': expected an integer"));
        assert!(e(json!({"id": "a", "n": 1.5})).starts_with("argument 'n':"));
        assert!(e(json!({"id": "a", "x": {}})).starts_with("argument 'x':"));
        assert!(e(json!({"id": "a", "b": "yes"})).starts_with("argument 'b':"));
        assert!(e(json!({"id": "a", "list": "a"})).starts_with("argument 'list':"));
        assert!(e(json!({"id": "a", "state": "maybe"})).starts_with("argument 'state':"));
    }

    #[test]
    fn huge_numbers_saturate() {
        let s = schema();
        let n = |v: Json| validate(&s, &json!({"id": "a", "n": v})).unwrap()["n"].clone();
        assert_eq!(n(json!(u64::MAX)), json!(i64::MAX));
        assert_eq!(n(json!(1e300)), json!(i64::MAX));
        assert_eq!(n(json!(-1e300)), json!(i64::MIN));
        assert_eq!(n(json!("99999999999999999999999")), json!(i64::MAX));
        assert_eq!(n(json!(" 7 ")), json!(7));
    }

    #[test]
    fn public_schema_strips_extensions() {
        let p = public_schema(&schema());
        assert!(p["properties"]["state"].get("x-aliases").is_none());
        assert_eq!(p["properties"]["state"]["enum"], json!(["HIGH", "LOW"]));
    }
}
