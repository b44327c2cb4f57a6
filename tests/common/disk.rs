//! Filesystems a fault test mounts under an agent's data directory (root only): a small
//! tmpfs that fills up like a small card, and an ext4 image on a loop device that the
//! kernel turns read-only under the running agent, as it does to a card that fails.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether this process may mount filesystems (the fault tests skip otherwise).
pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

fn run(cmd: &mut Command) -> bool {
    cmd.status().is_ok_and(|s| s.success())
}

/// A tmpfs mounted on `at` for the test's life: a small card that fills up.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at))
        .then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the filesystem of `path` to the last byte (ENOSPC ends it).
pub fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0x5au8; 64 * 1024];
    while f.write_all(&block).is_ok() {}
    let small = [1u8; 512];
    while f.write_all(&small).is_ok() {}
    let _ = f.sync_all();
}

/// An ext4 image on a loop device, mounted on `at` with `errors=remount-ro` as
/// Raspberry Pi OS mounts its root. Linux refuses `mount -o remount,ro` while a process
/// holds files open for writing (LMDB does), so the test turns it read-only the way a
/// failing card does: a filesystem error (`trigger_fs_error`, ext4's own test hook), after
/// which the kernel makes it read-only (`emergency_ro`) until it is unmounted.
pub struct Ext4 {
    image: PathBuf,
    at: PathBuf,
    mounted: bool,
}

impl Ext4 {
    pub fn mount(image: &Path, at: &Path, size_mb: u64) -> Option<Ext4> {
        std::fs::create_dir_all(at).unwrap();
        let f = std::fs::File::create(image).unwrap();
        f.set_len(size_mb << 20).unwrap();
        let made = run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(image));
        let mut fs = Ext4 {
            image: image.to_path_buf(),
            at: at.to_path_buf(),
            mounted: false,
        };
        (made && fs.remount()).then_some(fs)
    }

    fn remount(&mut self) -> bool {
        self.mounted = run(Command::new("mount")
            .args(["-o", "loop,errors=remount-ro"])
            .arg(&self.image)
            .arg(&self.at));
        self.mounted
    }

    /// The loop device's name (`loop3`), as `/sys/fs/ext4/` knows it.
    fn device(&self) -> String {
        let out = Command::new("findmnt")
            .args(["-no", "SOURCE"])
            .arg(&self.at)
            .output()
            .unwrap();
        let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
        dev.rsplit('/').next().unwrap_or_default().to_string()
    }

    /// A filesystem error: the kernel remounts it read-only at once.
    pub fn fail(&self) {
        let hook = format!("/sys/fs/ext4/{}/trigger_fs_error", self.device());
        std::fs::write(&hook, "fault test\n").unwrap_or_else(|e| panic!("{hook}: {e}"));
    }

    /// What a reboot does: unmount, `e2fsck -fy`, mount read-write again.
    pub fn repair(&mut self) {
        assert!(run(Command::new("umount").arg(&self.at)), "umount");
        self.mounted = false;
        // 0: clean; 1: errors corrected (the error the test injected is recorded).
        let st = Command::new("e2fsck")
            .args(["-fy"])
            .arg(&self.image)
            .output()
            .unwrap();
        assert!(
            matches!(st.status.code(), Some(0 | 1)),
            "e2fsck: {}",
            String::from_utf8_lossy(&st.stdout)
        );
        assert!(self.remount(), "mount again");
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg("-l").arg(&self.at).status();
        }
    }
}
