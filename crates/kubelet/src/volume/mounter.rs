//! The mount syscalls volumes need, behind [`Mounter`] so everything else is tested without
//! root: [`HostMounter`] mounts for real (rustix, `/proc/self/mountinfo`), and `FakeMounter`
//! keeps a mount table in memory and records its [`MountCall`]s.

use std::ffi::CString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// A mount point of the kubelet's mount namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountPoint {
    /// Where it is mounted (as the kernel reports it: absolute, symlinks resolved).
    pub path: PathBuf,
    /// The filesystem type, e.g. `tmpfs`.
    pub fs_type: String,
}

/// The mount syscalls volumes need, so everything else is tested without root.
pub trait Mounter: Send + Sync {
    /// The current mount points (`/proc/self/mountinfo`).
    fn mount_points(&self) -> io::Result<Vec<MountPoint>>;
    /// Mounts a tmpfs on `target`, limited to `size_bytes` when given (else the kernel's default,
    /// half the RAM).
    fn mount_tmpfs(&self, target: &Path, size_bytes: Option<i64>) -> io::Result<()>;
    /// Detaches the mount on `target` lazily (`MNT_DETACH`): it leaves the tree at once and is
    /// freed when no longer busy.
    fn unmount(&self, target: &Path) -> io::Result<()>;
}

/// [`Mounter`] on the host: `mount(2)`/`umount2(2)` through rustix, mount points from
/// `/proc/self/mountinfo`. Mounting needs `CAP_SYS_ADMIN`.
#[derive(Clone, Copy, Debug, Default)]
pub struct HostMounter;

impl Mounter for HostMounter {
    fn mount_points(&self) -> io::Result<Vec<MountPoint>> {
        Ok(parse_mountinfo(&fs::read_to_string(
            "/proc/self/mountinfo",
        )?))
    }

    fn mount_tmpfs(&self, target: &Path, size_bytes: Option<i64>) -> io::Result<()> {
        let data = match size_bytes {
            Some(size) => Some(
                CString::new(format!("size={size}"))
                    .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?,
            ),
            None => None,
        };
        rustix::mount::mount(
            "tmpfs",
            target,
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            data.as_deref(),
        )?;
        Ok(())
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        rustix::mount::unmount(target, rustix::mount::UnmountFlags::DETACH)?;
        Ok(())
    }
}

/// Mount points and filesystem types from the text of `/proc/<pid>/mountinfo` (field 5 is the
/// mount point with `\ooo` octal escapes; the type follows the `-` separator).
fn parse_mountinfo(text: &str) -> Vec<MountPoint> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let mount_point = fields.get(4)?;
            let separator = fields.iter().position(|f| *f == "-")?;
            let fs_type = fields.get(separator + 1)?;
            Some(MountPoint {
                path: PathBuf::from(unescape_octal(mount_point)),
                fs_type: (*fs_type).to_string(),
            })
        })
        .collect()
}

/// Undoes the kernel's `\ooo` escaping of space, tab, newline and backslash in mountinfo.
fn unescape_octal(field: &str) -> String {
    use std::os::unix::ffi::OsStringExt;
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|digits| bytes[i] == b'\\' && digits.iter().all(|d| (b'0'..=b'7').contains(d)));
        match octal {
            Some(digits) => {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    std::ffi::OsString::from_vec(out)
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_is_parsed() {
        let text = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
95 22 0:50 / /var/lib/ferry/pods/u1/volumes/kubernetes.io~empty-dir/my\\040cache rw,relatime shared:50 - tmpfs tmpfs rw,size=1024k
96 22 0:51 / /with/optional rw master:1 propagate_from:2 - tmpfs tmpfs rw
";
        assert_eq!(
            parse_mountinfo(text),
            vec![
                MountPoint {
                    path: "/".into(),
                    fs_type: "ext4".into()
                },
                MountPoint {
                    path: "/var/lib/ferry/pods/u1/volumes/kubernetes.io~empty-dir/my cache".into(),
                    fs_type: "tmpfs".into()
                },
                MountPoint {
                    path: "/with/optional".into(),
                    fs_type: "tmpfs".into()
                },
            ]
        );
        assert_eq!(unescape_octal("a\\134b\\011c\\"), "a\\b\tc\\");
    }
}
