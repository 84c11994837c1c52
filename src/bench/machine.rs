//! What the figures were measured on: cores, CPU, memory and the disk
//! under the bench directory.

use std::path::Path;

use serde::Serialize;

/// The machine a bench ran on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Cores available to this process.
    pub cores: usize,
    /// The CPU's model name.
    pub cpu: String,
    /// Total memory, in bytes.
    pub memory_bytes: u64,
    /// The filesystem of the bench directory, its device and whether that
    /// device spins: e.g. `ext4 on /dev/vda, non-rotational`.
    pub disk: String,
}

impl Machine {
    /// Describes this machine, with the disk that holds `dir`.
    pub fn describe(dir: &Path) -> Machine {
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu: cpu_model().unwrap_or_else(|| std::env::consts::ARCH.to_string()),
            memory_bytes: memory_total().unwrap_or(0),
            disk: disk_of(dir).unwrap_or_else(|| "unknown".into()),
        }
    }
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines().find_map(|line| {
        line.strip_prefix("model name")?
            .split_once(':')
            .map(|(_, v)| v.trim().to_string())
    })
}

fn memory_total() -> Option<u64> {
    kib_field("/proc/meminfo", "MemTotal:")
}

/// The filesystem type and device of the mount holding `dir`.
fn disk_of(dir: &Path) -> Option<String> {
    let dir = dir.canonicalize().ok()?;
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    let (device, fs) = mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (device, point, fs) = (fields.next()?, fields.next()?, fields.next()?);
            dir.starts_with(point).then_some((point.len(), device, fs))
        })
        .max_by_key(|(len, _, _)| *len)
        .map(|(_, device, fs)| (device.to_string(), fs.to_string()))?;
    let kind = Path::new(&device)
        .file_name()
        .and_then(|name| {
            std::fs::read_to_string(format!("/sys/block/{}/queue/rotational", name.to_string_lossy())).ok()
        })
        .map(|r| {
            if r.trim() == "1" {
                ", rotational"
            } else {
                ", non-rotational"
            }
        })
        .unwrap_or("");
    Some(format!("{fs} on {device}{kind}"))
}

/// The resident memory of a process, in bytes (Linux only).
pub fn resident_bytes(pid: u32) -> Option<u64> {
    kib_field(&format!("/proc/{pid}/status"), "VmRSS:")
}

/// A `Key:   1234 kB` line of a /proc file, in bytes.
fn kib_field(path: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let kib: u64 = text
        .lines()
        .find_map(|line| line.strip_prefix(key))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}
