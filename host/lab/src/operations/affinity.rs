//! `--affinity`: which CPUs each task may run on, as CPU lists in the
//! style of taskset/cpusets ("0-3,6"). Checked against `--cpus` before any
//! VM starts, so a typo never becomes a task that can run nowhere.

use vmm::exit::{Failure, Result};

fn bad(text: &str, why: impl std::fmt::Display) -> Failure {
    Failure::usage(format!("--affinity: '{text}' {why}"))
}

/// One CPU list ("0-3,6") as a mask; every CPU must be below `cpus`.
pub fn parse_cpu_list(text: &str, cpus: u32) -> Result<u64> {
    let mut mask = 0u64;
    for item in text.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(bad(text, "has an empty entry (write e.g. 0-3,6)"));
        }
        let (lo, hi) = match item.split_once('-') {
            Some((a, b)) => (cpu(text, a)?, cpu(text, b)?),
            None => {
                let c = cpu(text, item)?;
                (c, c)
            }
        };
        if lo > hi {
            return Err(bad(text, format!("has a backwards range {lo}-{hi}")));
        }
        if hi >= cpus {
            return Err(bad(
                text,
                format!(
                    "names CPU {hi}, but the VM has {cpus} (--cpus {cpus}: CPUs 0-{})",
                    cpus - 1
                ),
            ));
        }
        for c in lo..=hi {
            mask |= 1 << c;
        }
    }
    Ok(mask)
}

fn cpu(text: &str, s: &str) -> Result<u32> {
    s.trim()
        .parse::<u32>()
        .ok()
        .filter(|c| *c < 64)
        .ok_or_else(|| {
            bad(
                text,
                format!("has '{}', which is not a CPU number", s.trim()),
            )
        })
}

/// One list for all tasks, or one per task separated by '/'.
pub fn parse_affinity(text: &str, tasks: u32, cpus: u32) -> Result<Vec<u64>> {
    let lists: Vec<&str> = text.split('/').collect();
    let masks = lists
        .iter()
        .map(|l| parse_cpu_list(l, cpus))
        .collect::<Result<Vec<u64>>>()?;
    match masks.len() {
        1 => Ok(vec![masks[0]; tasks as usize]),
        n if n == tasks as usize => Ok(masks),
        n => Err(bad(
            text,
            format!(
                "has {n} CPU lists: give one for all tasks or one per task ({tasks}), separated by '/'"
            ),
        )),
    }
}

/// A mask as a CPU list for reports ("0-3,6"; "all" for 0 = any CPU).
pub fn fmt_cpu_list(mask: u64) -> String {
    if mask == 0 {
        return "all".into();
    }
    let mut parts = Vec::new();
    let mut c = 0u32;
    while c < 64 {
        if mask & (1 << c) == 0 {
            c += 1;
            continue;
        }
        let start = c;
        while c < 64 && mask & (1 << c) != 0 {
            c += 1;
        }
        parts.push(if c - 1 == start {
            start.to_string()
        } else {
            format!("{start}-{}", c - 1)
        });
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_ranges_and_singles() {
        assert_eq!(parse_cpu_list("0-3,6", 8), Ok(0b100_1111));
        assert_eq!(parse_cpu_list("5", 8), Ok(1 << 5));
        assert_eq!(parse_cpu_list(" 1 , 2-2 ", 4), Ok(0b110));
        assert_eq!(parse_cpu_list("0-63", 64), Ok(u64::MAX));
    }

    #[test]
    fn one_list_for_all_or_one_per_task() {
        assert_eq!(parse_affinity("0-1", 3, 4), Ok(vec![0b11; 3]));
        assert_eq!(parse_affinity("0/1/2-3", 3, 4), Ok(vec![1, 2, 0b1100]));
        let e = parse_affinity("0/1", 3, 4).unwrap_err().message;
        assert!(
            e.contains("has 2 CPU lists") && e.contains("one per task (3)"),
            "{e}"
        );
    }

    #[test]
    fn bad_lists_name_the_flag_and_the_problem() {
        let e = |t: &str, cpus| parse_cpu_list(t, cpus).unwrap_err().message;
        assert_eq!(
            e("0-4", 4),
            "--affinity: '0-4' names CPU 4, but the VM has 4 (--cpus 4: CPUs 0-3)"
        );
        assert!(e("3-1", 4).contains("backwards range 3-1"));
        assert!(e("0,,1", 4).contains("empty entry"));
        assert!(e("", 4).contains("empty entry"));
        assert!(e("x", 4).contains("'x', which is not a CPU number"));
        assert!(e("-1", 4).starts_with("--affinity: '-1'"));
        assert!(e("99", 128).contains("'99', which is not a CPU number"));
        assert!(parse_affinity("0/9", 2, 4).is_err());
    }

    #[test]
    fn masks_print_as_cpu_lists() {
        assert_eq!(fmt_cpu_list(0), "all");
        assert_eq!(fmt_cpu_list(0b100_1111), "0-3,6");
        assert_eq!(fmt_cpu_list(1 << 63), "63");
        assert_eq!(fmt_cpu_list(u64::MAX), "0-63");
        for m in [1u64, 0b1010, 0xf0f0, u64::MAX] {
            assert_eq!(parse_cpu_list(&fmt_cpu_list(m), 64), Ok(m));
        }
    }
}
