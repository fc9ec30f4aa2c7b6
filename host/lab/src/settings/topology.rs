//! `--topology` (and a scenario file's `topology`): the machine's shape as
//! text, `Ns,Nl,Nc,Nt` or a named preset, parsed into the ABI's
//! [`Topology`] before any VM starts. The grammar and the presets live
//! here, once, so the flag's help, its errors and the scenario file's
//! errors all show the same list.

use abi::memmap::MAX_CPUS;
use abi::topology::Topology;

/// A named shape: what `--topology NAME` means and what it models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    pub name: &'static str,
    pub topology: Topology,
    /// The machine it is shaped like, for `--help` and errors.
    pub models: &'static str,
}

const fn shape(sockets: u32, llcs: u32, cores: u32, threads: u32) -> Topology {
    Topology {
        sockets,
        llcs_per_socket: llcs,
        cores_per_llc: cores,
        threads_per_core: threads,
    }
}

/// Realistic shapes, smallest first; each at most `MAX_CPUS` (a unit test
/// checks it).
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "flat4",
        topology: shape(1, 1, 4, 1),
        models: "a small cloud VM: 4 single-thread cores, one cache",
    },
    Preset {
        name: "laptop",
        topology: shape(1, 1, 4, 2),
        models: "a 4-core SMT laptop (Intel Core i7 mobile): 8 CPUs, one L3",
    },
    Preset {
        name: "desktop",
        topology: shape(1, 2, 4, 2),
        models: "a two-CCX desktop (AMD Ryzen 7 3700X): 16 CPUs, an L3 per 4 cores",
    },
    Preset {
        name: "server",
        topology: shape(2, 1, 8, 2),
        models: "a two-socket server (2x Intel Xeon, 8 cores each): 32 CPUs, an L3 and a \
                 NUMA node per socket",
    },
    Preset {
        name: "chiplet",
        topology: shape(2, 4, 4, 2),
        models: "a two-socket chiplet server (2x AMD EPYC, 4 CCXs each): 64 CPUs, an L3 per 4 \
                 cores",
    },
];

/// What the text named: the shape, and the preset if it was one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    pub topology: Topology,
    pub preset: Option<&'static str>,
}

/// `2s,2l,4c,2t`: the form `--topology` and reports write a shape in.
pub fn format(t: &Topology) -> String {
    format!(
        "{}s,{}l,{}c,{}t",
        t.sockets, t.llcs_per_socket, t.cores_per_llc, t.threads_per_core
    )
}

/// The grammar and the presets, for `--help` and every error.
pub fn grammar() -> String {
    let presets: Vec<String> = PRESETS
        .iter()
        .map(|p| format!("{} ({})", p.name, format(&p.topology)))
        .collect();
    format!(
        "give Ns,Nl,Nc,Nt (sockets, LLCs per socket, cores per LLC, threads per core; each \
         level once, each at least 1, at most {MAX_CPUS} CPUs in all; e.g. 2s,2l,4c,2t = 32 \
         CPUs) or a preset: {}",
        presets.join(", ")
    )
}

/// Parse `text`; the error says what is wrong with it (the caller names
/// the flag or the file's key, and adds [`grammar`]).
pub fn parse(text: &str) -> std::result::Result<Parsed, String> {
    let t = text.trim();
    if let Some(p) = PRESETS.iter().find(|p| p.name == t) {
        return Ok(Parsed {
            topology: p.topology,
            preset: Some(p.name),
        });
    }
    if t.is_empty() {
        return Err("the shape is empty".into());
    }
    if !t.contains(',') && !t.chars().any(|c| c.is_ascii_digit()) {
        return Err(format!("'{t}' is not a preset"));
    }
    const LEVELS: [(char, &str); 4] = [
        ('s', "sockets"),
        ('l', "LLCs per socket"),
        ('c', "cores per LLC"),
        ('t', "threads per core"),
    ];
    let mut counts: [Option<u32>; 4] = [None; 4];
    for part in t.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(format!("'{t}' has an empty entry"));
        }
        let (digits, suffix) =
            part.split_at(part.len() - part.chars().last().map_or(0, char::len_utf8));
        let Some(level) = LEVELS.iter().position(|(c, _)| suffix.starts_with(*c)) else {
            return Err(format!(
                "'{part}' names no level (end each count with s, l, c or t)"
            ));
        };
        let what = LEVELS[level].1;
        let n: u32 = match digits.parse() {
            Ok(n) => n,
            Err(_) if digits.is_empty() => return Err(format!("'{part}' has no count of {what}")),
            Err(_) => return Err(format!("'{part}': '{digits}' is not a count of {what}")),
        };
        if n == 0 {
            return Err(format!("'{part}': {what} must be at least 1"));
        }
        if counts[level].replace(n).is_some() {
            return Err(format!("'{t}' gives {what} twice"));
        }
    }
    let missing: Vec<&str> = LEVELS
        .iter()
        .zip(counts)
        .filter(|(_, n)| n.is_none())
        .map(|((_, what), _)| *what)
        .collect();
    if !missing.is_empty() {
        return Err(format!("'{t}' does not give {}", missing.join(", ")));
    }
    let [s, l, c, th] = counts.map(|n| n.unwrap_or(1));
    let topology = shape(s, l, c, th);
    if !topology.is_valid() {
        // Valid but for the total: every level is at least 1 here.
        let total = u128::from(s) * u128::from(l) * u128::from(c) * u128::from(th);
        return Err(format!(
            "'{t}' has {total} CPUs, above {MAX_CPUS} (the guest memory layout has room for \
             {MAX_CPUS} vCPUs)"
        ));
    }
    Ok(Parsed {
        topology,
        preset: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grammar_gives_each_level_once_in_any_order() {
        let p = parse("2s,2l,4c,2t").unwrap();
        assert_eq!(p.topology, shape(2, 2, 4, 2));
        assert_eq!((p.topology.cpus(), p.preset), (32, None));
        assert_eq!(parse("1s,2l,2c,2t").unwrap().topology.cpus(), 8);
        assert_eq!(
            parse(" 2t, 3c ,1l,1s ").unwrap().topology,
            shape(1, 1, 3, 2)
        );
        assert_eq!(format(&shape(1, 2, 3, 2)), "1s,2l,3c,2t");
        for p in PRESETS {
            assert_eq!(parse(&format(&p.topology)).unwrap().topology, p.topology);
        }
    }

    #[test]
    fn presets_are_distinct_realistic_and_fit() {
        let mut seen = std::collections::HashSet::new();
        for p in PRESETS {
            assert!(p.topology.is_valid(), "{}", p.name);
            assert!(seen.insert(p.topology), "{} repeats a shape", p.name);
            let got = parse(p.name).unwrap();
            assert_eq!((got.topology, got.preset), (p.topology, Some(p.name)));
            assert!(grammar().contains(&format!("{} ({})", p.name, format(&p.topology))));
        }
        assert!(PRESETS.iter().any(|p| p.topology.sockets > 1));
        assert!(PRESETS.iter().any(|p| p.topology.llcs_per_socket > 1));
        assert!(PRESETS.iter().any(|p| p.topology.threads_per_core > 1));
        assert!(PRESETS.iter().any(|p| p.topology == Topology::flat(4)));
    }

    #[test]
    fn every_malformed_shape_says_what_is_wrong() {
        let cases: &[(&str, &str)] = &[
            ("", "the shape is empty"),
            ("8", "'8' names no level"),
            ("nope", "'nope' is not a preset"),
            ("laptops", "'laptops' is not a preset"),
            ("2s,2l,4c", "does not give threads per core"),
            ("2s,2c", "does not give LLCs per socket, threads per core"),
            ("2s,2l,4c,2t,1s", "gives sockets twice"),
            ("0s,1l,1c,1t", "sockets must be at least 1"),
            ("1s,1l,0c,1t", "cores per LLC must be at least 1"),
            ("1s,1l,xc,1t", "'x' is not a count of cores per LLC"),
            ("1s,1l,-1c,1t", "'-1' is not a count of cores per LLC"),
            ("1s,1l,c,1t", "has no count of cores per LLC"),
            ("1s,1l,4x,1t", "'4x' names no level"),
            ("1s,,4c,1t", "has an empty entry"),
            ("3s,3l,3c,3t", "has 81 CPUs, above 64"),
            ("99999s,99999l,99999c,99999t", "above 64"),
            (
                "4294967295s,4294967295l,4294967295c,4294967295t",
                "above 64",
            ),
            ("99999999999s,1l,1c,1t", "is not a count of sockets"),
            ("1s,1l,4c,1tt", "'1t' is not a count of threads"),
            ("2s,2l,4c,5t", "has 80 CPUs, above 64"),
        ];
        for (text, want) in cases {
            match parse(text) {
                Ok(p) => panic!("{text:?} parsed as {p:?}"),
                Err(m) => assert!(m.contains(want), "{text:?}: {m}"),
            }
        }
        // The limit itself fits.
        assert_eq!(parse("4s,2l,4c,2t").unwrap().topology.cpus(), 64);
    }
}
