//! The data directory: where it is, that this user can write it, and that one agent owns
//! it. Every problem is found before anything is created and named as a setting to
//! change; an exclusive `flock` on `smollama.lock` keeps a second agent (or a second
//! writer such as `smollama memory import`) off a directory in use.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::settings::{self, Origin, Settings};
use crate::config::{ConfigError, suggest};

/// The lock file's name inside the data directory. It holds the PID and command of the
/// holder; the lock itself is the kernel's, released when the process dies however it
/// dies, so a file left by a killed process never blocks a restart.
pub const LOCK_FILE: &str = "smollama.lock";

/// A data directory resolved from the settings, with what to tell the user about it.
#[derive(Clone, Debug)]
pub struct DataDir {
    path: PathBuf,
    /// Where the path came from, as an error's location: the settings file and line, the
    /// environment variable, or the variable the default was derived from.
    at: (String, Option<usize>),
    /// What to change: "[node] data_dir in FILE:LINE", "SMOLLAMA_NODE_DATA_DIR", ...
    setting: String,
    /// Set in a file or the environment (so a missing parent is a mistake, not created).
    configured: bool,
}

/// Who holds the lock: the PID and command written in the lock file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub pid: Option<u32>,
    pub command: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pid {
            Some(pid) => write!(f, "PID {pid}")?,
            None => f.write_str("PID unknown")?,
        }
        if !self.command.is_empty() {
            write!(f, ", `{}`", self.command)?;
        }
        Ok(())
    }
}

/// The exclusive lock on a data directory; released when dropped (or when the process
/// ends).
#[derive(Debug)]
pub struct Lock {
    file: File,
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Still locked here: nobody reads a half-cleared file. The kernel unlocks on close.
        let _ = self.file.set_len(0);
    }
}

/// Why the lock could not be taken.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds it.
    Held { dir: PathBuf, holder: Holder },
    /// The lock file could not be opened or locked (named as a setting to change).
    Unusable(ConfigError),
}

impl DataDir {
    /// The configured (or default) data directory, without touching the filesystem. An
    /// error when none is configured and none of `STATE_DIRECTORY`, `XDG_DATA_HOME`, `HOME`
    /// is set to derive the default from.
    pub fn resolve(settings: &Settings) -> Result<DataDir, ConfigError> {
        let setting = settings.setting_to_change("node", "data_dir");
        let (at, configured) = match settings.origin("node", "data_dir") {
            Origin::File { path, line } => ((path.display().to_string(), Some(line)), true),
            Origin::Env(var) => ((format!("environment variable {var}"), None), true),
            Origin::Default | Origin::CommandLine => {
                let from = settings::default_data_dir_from().map(|(_, var)| var);
                match from {
                    Some(var) => (
                        (format!("default data directory (from ${var})"), None),
                        false,
                    ),
                    None => ((String::from("[node] data_dir"), None), false),
                }
            }
        };
        let path = settings.node.data_dir.clone();
        if path.as_os_str().is_empty() {
            return Err(ConfigError::new(
                at.0,
                None,
                format!(
                    "not set, and none of {} is set to choose a default data directory from",
                    suggest::one_of(&settings::DATA_DIR_DEFAULT_FROM)
                ),
            )
            .with_hint(format!(
                "set {setting} to a directory smollama may write, e.g. data_dir = \"/var/lib/smollama\""
            )));
        }
        Ok(DataDir {
            path,
            at,
            setting,
            configured,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, message: String, hint: String) -> ConfigError {
        ConfigError::new(self.at.0.clone(), self.at.1, message).with_hint(hint)
    }

    /// Create the directory if needed and check that this user can write it and the store
    /// in it. A configured directory's parent must exist (a path under an unmounted disk
    /// is a mistake, not something to create on the SD card); the default is created
    /// with its parents.
    pub fn prepare(&self) -> Result<(), ConfigError> {
        let dir = &self.path;
        let shown = format!("data_dir \"{}\"", dir.display());
        let writable_hint = format!(
            "set {} to a directory this user can write, e.g. \"/var/lib/smollama\"",
            self.setting
        );
        match std::fs::metadata(dir) {
            Ok(m) if !m.is_dir() => {
                return Err(
                    self.error(format!("{shown} is a file, not a directory"), writable_hint)
                );
            }
            Ok(_) => {}
            Err(_) => {
                let parent = dir
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                if parent.is_file() {
                    return Err(self.error(
                        format!("{shown}: its parent {} is a file", parent.display()),
                        writable_hint,
                    ));
                }
                if self.configured && !parent.is_dir() {
                    return Err(self.error(
                        format!("{shown}: its parent {} does not exist", parent.display()),
                        format!(
                            "create (or mount) {} first, or set {} to a place that exists; smollama creates only the last directory",
                            parent.display(),
                            self.setting
                        ),
                    ));
                }
                let made = if self.configured {
                    std::fs::create_dir(dir)
                } else {
                    std::fs::create_dir_all(dir)
                };
                if let Err(e) = made {
                    return Err(self.io_error(&shown, "cannot be created", &e, &writable_hint));
                }
            }
        }
        // The directory, the store in it and its files: all must be writable by this user
        // (a store once created by root refuses the service user later).
        let store = dir.join("store");
        for path in [
            dir.clone(),
            dir.join(LOCK_FILE),
            store.clone(),
            store.join("data.mdb"),
            store.join("lock.mdb"),
        ] {
            if path != *dir && !path.exists() {
                continue;
            }
            if let Err(e) = writable(&path) {
                let what = if path == *dir {
                    shown.clone()
                } else {
                    format!("{} (in {shown})", path.display())
                };
                return Err(self.io_error(&what, "is not writable", &e, &writable_hint));
            }
        }
        Ok(())
    }

    /// An I/O failure on `what`, in words: read-only filesystem, permission (with the owner
    /// and this user), or the system's own message.
    fn io_error(
        &self,
        what: &str,
        doing: &str,
        e: &std::io::Error,
        writable_hint: &str,
    ) -> ConfigError {
        let uid = unsafe { libc::geteuid() };
        match e.raw_os_error() {
            Some(libc::EROFS) => self.error(
                format!("{what} is on a read-only filesystem"),
                format!(
                    "{writable_hint}; under the systemd unit (ProtectSystem=strict) only /var/lib/smollama is writable: leave data_dir out to use it"
                ),
            ),
            Some(libc::EACCES) | Some(libc::EPERM) => self.error(
                format!("{what} {doing}: permission denied for this user (uid {uid})"),
                format!(
                    "give it to this user (e.g. sudo chown -R smollama: {}) or {}",
                    self.path.display(),
                    lower_first(writable_hint)
                ),
            ),
            _ => self.error(format!("{what} {doing}: {e}"), writable_hint.to_string()),
        }
    }

    /// Take the exclusive lock for `command` (e.g. "smollama run"), writing the PID and
    /// the command into the lock file. Fails at once if another process holds it.
    pub fn lock(&self, command: &str) -> Result<Lock, LockError> {
        let path = self.path.join(LOCK_FILE);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| {
                LockError::Unusable(self.io_error(
                    &format!("{} (in data_dir)", path.display()),
                    "cannot be opened",
                    &e,
                    &format!("set {} to a directory this user can write", self.setting),
                ))
            })?;
        // SAFETY: flock on a descriptor we own; no memory is involved.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(LockError::Held {
                    dir: self.path.clone(),
                    holder: read_holder(&mut file),
                });
            }
            return Err(LockError::Unusable(self.error(
                format!("cannot lock {}: {e}", path.display()),
                format!("set {} to a local directory", self.setting),
            )));
        }
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| write!(file, "{}\n{command}\n", std::process::id()))
            .and_then(|()| file.flush());
        if let Err(e) = written {
            return Err(LockError::Unusable(self.io_error(
                &path.display().to_string(),
                "cannot be written",
                &e,
                &format!("set {} to a directory this user can write", self.setting),
            )));
        }
        Ok(Lock { file })
    }
}

/// The holder's PID and command. The holder writes them just after locking, so an empty
/// file is re-read for a moment before the PID is called unknown.
fn read_holder(file: &mut File) -> Holder {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let mut text = String::new();
        let _ = file.rewind().and_then(|()| file.read_to_string(&mut text));
        let mut lines = text.lines();
        let pid = lines.next().and_then(|l| l.trim().parse().ok());
        if pid.is_some() || Instant::now() >= deadline {
            return Holder {
                pid,
                command: lines.next().unwrap_or("").trim().to_string(),
            };
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `access(W_OK)`: what the kernel would say to a write, without writing (also reports a
/// read-only filesystem).
fn writable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Where the store lives under the data directory.
pub fn store_dir(settings: &Settings) -> std::path::PathBuf {
    settings.node.data_dir.join("store")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("smollama-datadir-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn configured(dir: &Path) -> DataDir {
        let mut s = Settings::defaults();
        s.node.data_dir = dir.to_path_buf();
        s.set_origin(
            "node",
            "data_dir",
            Origin::File {
                path: "/etc/smollama/smollama.toml".into(),
                line: 5,
            },
        );
        DataDir::resolve(&s).unwrap()
    }

    #[test]
    fn one_lock_per_directory_and_the_holder_is_named() {
        let d = temp("lock");
        let dd = configured(&d.join("data"));
        dd.prepare().unwrap();
        let lock = dd.lock("smollama run").unwrap();
        // flock locks belong to the open file: a second open in this process conflicts too.
        match dd.lock("smollama memory import") {
            Err(LockError::Held { dir, holder }) => {
                assert_eq!(dir, d.join("data"));
                assert_eq!(holder.pid, Some(std::process::id()));
                assert_eq!(holder.command, "smollama run");
            }
            other => panic!("{other:?}"),
        }
        drop(lock);
        // A file left behind (as by a killed process) does not block.
        std::fs::write(d.join("data").join(LOCK_FILE), "999999999\nsmollama run\n").unwrap();
        let _again = dd.lock("smollama run").unwrap();
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn a_missing_parent_of_a_configured_directory_is_not_created() {
        let d = temp("parent");
        let dd = configured(&d.join("usb/smollama"));
        let e = dd.prepare().unwrap_err();
        assert_eq!(e.file, "/etc/smollama/smollama.toml");
        assert_eq!(e.line, Some(5));
        assert!(e.message.contains("its parent"), "{e}");
        assert!(
            e.message.contains(&d.join("usb").display().to_string()),
            "{e}"
        );
        assert!(
            e.hint
                .as_deref()
                .unwrap()
                .contains("[node] data_dir in /etc/smollama/smollama.toml:5"),
            "{e}"
        );
        assert!(!d.join("usb").exists());
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn a_file_in_the_way_is_named() {
        let d = temp("file");
        std::fs::write(d.join("data"), "x").unwrap();
        let e = configured(&d.join("data")).prepare().unwrap_err();
        assert!(e.message.contains("is a file, not a directory"), "{e}");
        std::fs::remove_dir_all(&d).ok();
    }
}
