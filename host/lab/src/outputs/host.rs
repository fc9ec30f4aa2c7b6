//! The host machine a run happened on, for `result.json`. Two results are
//! only comparable when they come from similar machines (and the same KVM
//! backend: PVM emulates guest CPL0, VMX/SVM does not), so every kept
//! result says where it came from. Everything is read from /proc and /sys;
//! a field that cannot be read is null rather than an error.

use serde::Serialize;
use std::path::Path;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HostInfo {
    /// `uname -r`.
    pub kernel_release: Option<String>,
    /// The first "model name" in /proc/cpuinfo.
    pub cpu_model: Option<String>,
    /// Online logical CPUs on the host.
    pub cpus: Option<u32>,
    /// CPUs this process may run on (its affinity mask / cgroup limit):
    /// what the vCPU threads actually shared.
    pub cpus_available: Option<u32>,
    /// MemTotal from /proc/meminfo.
    pub memory_bytes: Option<u64>,
    /// Which KVM module is loaded: "pvm", "intel", "amd" or null.
    pub kvm_backend: Option<String>,
}

impl HostInfo {
    /// The machine this process runs on.
    pub fn current() -> HostInfo {
        let read = |p: &str| std::fs::read_to_string(p).ok();
        let cpuinfo = read("/proc/cpuinfo").unwrap_or_default();
        HostInfo {
            kernel_release: read("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()),
            cpu_model: cpu_model(&cpuinfo),
            cpus: logical_cpus(&cpuinfo),
            cpus_available: std::thread::available_parallelism()
                .ok()
                .map(|n| n.get() as u32),
            memory_bytes: read("/proc/meminfo").and_then(|m| mem_total(&m)),
            kvm_backend: kvm_backend(Path::new("/sys/module")),
        }
    }
}

fn cpuinfo_values<'a>(cpuinfo: &'a str, key: &'a str) -> impl Iterator<Item = &'a str> {
    cpuinfo.lines().filter_map(move |l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then_some(v.trim())
    })
}

fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo_values(cpuinfo, "model name")
        .next()
        .map(str::to_string)
}

fn logical_cpus(cpuinfo: &str) -> Option<u32> {
    let n = cpuinfo_values(cpuinfo, "processor").count();
    (n > 0).then_some(n as u32)
}

/// "MemTotal:  131072 kB" -> bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line
        .trim_start_matches("MemTotal:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

fn kvm_backend(sys_module: &Path) -> Option<String> {
    ["pvm", "intel", "amd"]
        .into_iter()
        .find(|b| sys_module.join(format!("kvm_{b}")).is_dir())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPUINFO: &str = "processor\t: 0\nmodel name\t: Example CPU @ 2.00GHz\nflags\t: fpu\n\n\
                           processor\t: 1\nmodel name\t: Example CPU @ 2.00GHz\n";

    #[test]
    fn cpuinfo_gives_the_model_and_the_count() {
        assert_eq!(cpu_model(CPUINFO).as_deref(), Some("Example CPU @ 2.00GHz"));
        assert_eq!(logical_cpus(CPUINFO), Some(2));
        assert_eq!(cpu_model(""), None);
        assert_eq!(logical_cpus(""), None);
    }

    #[test]
    fn meminfo_total_is_in_bytes() {
        assert_eq!(
            mem_total("MemTotal:       2048 kB\nMemFree: 1 kB\n"),
            Some(2048 * 1024)
        );
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
        assert_eq!(mem_total("MemTotal: lots kB\n"), None);
    }

    #[test]
    fn kvm_backend_is_the_loaded_module() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(kvm_backend(dir.path()), None);
        std::fs::create_dir(dir.path().join("kvm_amd")).unwrap();
        assert_eq!(kvm_backend(dir.path()).as_deref(), Some("amd"));
    }

    #[test]
    fn this_machine_is_described() {
        let h = HostInfo::current();
        assert!(h.kernel_release.is_some_and(|r| !r.is_empty()));
        assert!(h.cpus_available.is_some_and(|n| n >= 1));
        assert!(h.memory_bytes.is_some_and(|m| m > 0));
    }
}
