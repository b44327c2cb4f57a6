//! Environment overrides: `SMOLLAMA_<SECTION>_<KEY>` for every key of the tables, checked
//! like the file's values. Lists are comma-separated; `[[gpio.pins]]` is
//! `SMOLLAMA_GPIO_PINS` in the format of `gpio::pins_from_env`. A mistyped variable is an
//! error naming the three closest names.

use super::gpio;
use super::key::{self, Key, Place};
use super::{CONFIG_ENV, ENV_PREFIX, Origin, SECTIONS, Settings};
use crate::config::error::{ConfigError, ConfigErrors};
use crate::config::expect::Want;
use crate::config::suggest;

/// Every override variable with its section and key, in table order.
pub(crate) fn variables() -> impl Iterator<Item = (String, &'static str, &'static Key)> {
    SECTIONS
        .iter()
        .flat_map(|s| s.keys.iter().map(move |k| (k.env_name(s.name), s.name, k)))
}

pub(crate) fn apply(settings: &mut Settings, env: &[(String, String)]) -> Result<(), ConfigErrors> {
    let place = Place { base: None };
    let mut errors = Vec::new();
    for (var, value) in env {
        // SMOLLAMA_TEST_* are test hooks, not settings.
        if !var.starts_with(ENV_PREFIX)
            || var == CONFIG_ENV
            || var.starts_with("SMOLLAMA_TEST_")
            || value.is_empty()
        {
            continue;
        }
        let origin = format!("environment variable {var}");
        let Some((_, section, key)) = variables().find(|(name, _, _)| name == var) else {
            let mut names: Vec<String> = variables().map(|(name, _, _)| name).collect();
            names.push(CONFIG_ENV.to_string());
            // The three closest, not all of them: the list is long and the typo is near.
            let closest = suggest::by_closeness(var, &names);
            let closest: Vec<&str> = closest.iter().take(3).map(String::as_str).collect();
            errors.push(
                ConfigError::new(origin, None, format!("unknown setting variable {var}"))
                    .with_hint(format!(
                        "did you mean {}? every variable is SMOLLAMA_<SECTION>_<KEY> of a key in docs/configuration.md",
                        suggest::one_of(&closest)
                    )),
            );
            continue;
        };
        let result = if key.spec.want == Want::Tables {
            pins(settings, value)
        } else {
            key::from_env(key, value).and_then(|v| (key.set)(settings, v, &place))
        };
        match result {
            Ok(()) => settings.set_origin(section, key.spec.name, Origin::Env(var.clone())),
            Err((msg, hint)) => {
                let mut e = ConfigError::new(origin, None, msg);
                e.hint = hint;
                errors.push(e);
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(errors))
    }
}

/// `SMOLLAMA_GPIO_PINS` replaces the file's pins (a list is overridden whole).
fn pins(settings: &mut Settings, value: &str) -> Result<(), key::Problem> {
    let raw = gpio::pins_from_env(value).map_err(|(m, h)| (m, Some(h)))?;
    let mut pins = Vec::new();
    for r in raw {
        let p = gpio::pin(r, &pins).map_err(|(_, m, h)| (m, Some(h)))?;
        pins.push(p);
    }
    settings.gpio.pins = pins;
    Ok(())
}
