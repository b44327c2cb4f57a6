//! What the sources of kernel-driven sensors share (`dht11`/`dht22`, `ds18b20`, `iio`):
//! the `root` parameter (the sysfs mount point, `/sys`; tests point it at a fake tree laid
//! out as the kernel does), reading one small attribute into a caller's buffer, telling a
//! device that is gone from one that failed once, finding an IIO device by name, and the
//! capped backoff while a device is missing.
//!
//! The layouts these sources read, as the kernel documents them
//! (`Documentation/ABI/testing/sysfs-bus-iio`, `drivers/w1/slaves/w1_therm.c`):
//!
//! ```text
//! <root>/bus/iio/devices/iio:deviceN/name                  "dht11@0\n" (the driver's device name)
//! <root>/bus/iio/devices/iio:deviceN/in_temp_input         millidegrees Celsius
//! <root>/bus/iio/devices/iio:deviceN/in_humidityrelative_input   milli-percent RH
//! <root>/bus/iio/devices/iio:deviceN/in_<type>[N]_raw, _offset, _scale, _input
//! <root>/bus/w1/devices/28-XXXXXXXXXXXX/w1_slave           two lines, see ds18b20.rs
//! ```

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::config::expect::Want;
use crate::config::spec::Spec;
use crate::plugins::Param;
use crate::plugins::params::{Problem, as_text};

/// Where sysfs is mounted on a real system.
pub(crate) const DEFAULT_ROOT: &str = "/sys";

/// Where the kernel lists IIO devices, under the root.
pub(crate) const IIO_DEVICES: &str = "bus/iio/devices";

/// Where the kernel lists 1-wire slaves, under the root.
pub(crate) const W1_DEVICES: &str = "bus/w1/devices";

/// The `root` parameter every sysfs kind declares.
pub(crate) const ROOT_PARAM: Param = Param::new(Spec {
    default: "\"/sys\"",
    doc: "where sysfs is mounted (tests point this at a fake tree laid out as the kernel does)",
    hint: "an absolute directory, normally root = \"/sys\"",
    ..Spec::new("root", Want::Text)
});

/// The `root` parameter's value: an absolute path.
pub(crate) fn parse_root(v: &toml::Value) -> Result<PathBuf, Problem> {
    let s = as_text(v)?;
    if !Path::new(s).is_absolute() {
        return Err((
            format!("'{s}' is not an absolute path"),
            Some(ROOT_PARAM.spec.hint.into()),
        ));
    }
    Ok(PathBuf::from(s))
}

/// Read a sysfs attribute (at most `buf.len()` bytes) into `buf`: the bytes read, or the
/// kernel's error (a driver's EIO or ETIMEDOUT surfaces here, on the read). Opened
/// non-blocking, so a FIFO in a fake tree cannot hang the hw thread.
pub(crate) fn read_attr(path: &Path, buf: &mut [u8]) -> io::Result<usize> {
    let mut f: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The number an attribute holds (`23125\n`, `0.001250000`), if it is one.
pub(crate) fn number(bytes: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(bytes).ok()?.trim();
    s.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// Whether a read error means the attribute (or its device) is not there, rather than
/// a failed transaction: the device directory went away with the driver or the overlay.
pub(crate) fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
        || matches!(e.raw_os_error(), Some(libc::ENODEV) | Some(libc::ENXIO))
}

/// An IIO device directory with its `name` (trimmed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IioDevice {
    pub dir: PathBuf,
    pub name: String,
}

impl IioDevice {
    /// `iio:device0`.
    pub fn id(&self) -> &str {
        self.dir.file_name().and_then(|n| n.to_str()).unwrap_or("")
    }

    /// Whether `want` names it: its `iio:deviceN`, or its name as the driver gave it
    /// (`dht11@4`, `bme280`), or that name without the `@address` the device tree adds.
    pub fn answers_to(&self, want: &str) -> bool {
        self.id() == want || self.name == want || base_name(&self.name) == want
    }
}

/// A device name without a bus prefix or `@unit-address`: `dht11` of `dht11@4` (the name
/// a Pi's overlay gives, `dht11@0` or `dht11@4`) or of `soc:dht11@4`.
pub(crate) fn base_name(name: &str) -> &str {
    let tail = name.rsplit(':').next().unwrap_or(name);
    tail.split('@').next().unwrap_or(tail)
}

/// The IIO devices under `root`, in `iio:deviceN` order. An empty list when the kernel has
/// none (no `bus/iio/devices` directory at all is the same: no IIO driver loaded).
pub(crate) fn iio_devices(root: &Path) -> Vec<IioDevice> {
    let Ok(dir) = std::fs::read_dir(root.join(IIO_DEVICES)) else {
        return Vec::new();
    };
    let mut out: Vec<IioDevice> = dir
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with("iio:device"))
        })
        .filter_map(|e| {
            let dir = e.path();
            let mut buf = [0u8; 128];
            let n = read_attr(&dir.join("name"), &mut buf).ok()?;
            let name = std::str::from_utf8(&buf[..n]).ok()?.trim().to_string();
            Some(IioDevice { dir, name })
        })
        .collect();
    out.sort_by_key(|d| {
        d.id()
            .trim_start_matches("iio:device")
            .parse::<u32>()
            .unwrap_or(u32::MAX)
    });
    out
}

/// The first IIO device under `root` that answers to `want`, or a sentence saying what
/// was there instead.
pub(crate) fn find_iio(root: &Path, want: &str) -> Result<IioDevice, String> {
    let all = iio_devices(root);
    if let Some(d) = all.iter().find(|d| d.answers_to(want)) {
        return Ok(d.clone());
    }
    let dir = root.join(IIO_DEVICES);
    Err(if all.is_empty() {
        format!("no IIO device named {want} under {}", dir.display())
    } else {
        let names: Vec<String> = all
            .iter()
            .map(|d| format!("{} ({})", d.id(), d.name))
            .collect();
        format!(
            "no IIO device named {want} under {} (there: {})",
            dir.display(),
            names.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_with_or_without_the_device_tree_address() {
        let d = IioDevice {
            dir: PathBuf::from("/sys/bus/iio/devices/iio:device2"),
            name: "dht11@4".into(),
        };
        assert!(d.answers_to("dht11"));
        assert!(d.answers_to("dht11@4"));
        assert!(d.answers_to("iio:device2"));
        assert!(!d.answers_to("dht11@5"));
        assert!(!d.answers_to("iio:device1"));
        assert_eq!(base_name("soc:dht11@4"), "dht11");
        assert_eq!(base_name("bme280"), "bme280");
    }

    #[test]
    fn numbers_are_trimmed_and_garbage_is_none() {
        assert_eq!(number(b"23125\n"), Some(23125.0));
        assert_eq!(number(b" 0.001250000 \n"), Some(0.00125));
        assert_eq!(number(b""), None);
        assert_eq!(number(b"nan"), None);
        assert_eq!(number(&[0xff]), None);
    }
}
