//! Durations as people write them in messages ("200ms", "1h"): the VMM
//! names its own limits in these units, and the lab reuses them.

pub const NS_PER_SEC: u64 = 1_000_000_000;
pub const HOUR_NS: u64 = 3600 * NS_PER_SEC;

/// A duration for messages, in the largest unit that divides it evenly.
pub fn fmt_ns(ns: u64) -> String {
    for (unit, name) in [
        (HOUR_NS, "h"),
        (NS_PER_SEC, "s"),
        (1_000_000, "ms"),
        (1_000, "us"),
    ] {
        if ns >= unit && ns.is_multiple_of(unit) {
            return format!("{}{name}", ns / unit);
        }
    }
    format!("{ns}ns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_unit_that_divides_evenly_is_chosen() {
        assert_eq!(fmt_ns(HOUR_NS), "1h");
        assert_eq!(fmt_ns(1_500_000_000), "1500ms");
        assert_eq!(fmt_ns(2_000), "2us");
        assert_eq!(fmt_ns(1_001), "1001ns");
    }
}
