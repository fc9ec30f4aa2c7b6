//! Problems found in a scenario file, located: each becomes one line
//! "FILE:LINE:COLUMN: what is wrong", the form editors and terminals turn
//! into a link, and all of them are reported at once, so fixing a file
//! does not take one run per mistake.

use std::ops::Range;

/// One problem, at a byte span of the file (None: the file as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub span: Option<Range<usize>>,
    pub message: String,
}

impl Problem {
    pub fn at(span: Range<usize>, message: impl Into<String>) -> Self {
        Problem {
            span: Some(span),
            message: message.into(),
        }
    }

    pub fn whole(message: impl Into<String>) -> Self {
        Problem {
            span: None,
            message: message.into(),
        }
    }

    /// From the TOML parser, with its messages made to speak of this
    /// file's terms (a "variant" is a phase).
    pub fn from_toml(e: &toml::de::Error) -> Self {
        let raw = e.message().trim();
        let message = if raw.contains("wanted exactly 1 element") {
            "a phase has exactly one key, e.g. { run = \"1ms\" }: write two phases as two \
             entries"
                .to_string()
        } else if raw.contains("expected a string") && raw.contains("integer") {
            format!("{raw} (durations are strings with a unit, e.g. \"5ms\")")
        } else if let Some(m) = unknown_key(raw) {
            m
        } else {
            raw.to_string()
        };
        Problem {
            span: e.span(),
            message,
        }
    }
}

/// serde's "unknown field `x`, expected one of `a`, `b`" (or "unknown
/// variant", which here is a phase), with a guess at what was meant.
fn unknown_key(raw: &str) -> Option<String> {
    let (what, rest) = if let Some(r) = raw.strip_prefix("unknown field `") {
        ("field", r)
    } else {
        ("phase", raw.strip_prefix("unknown variant `")?)
    };
    let (word, rest) = rest.split_once('`')?;
    let expected = rest.split_once("expected one of ").map_or("", |(_, l)| l);
    let known: Vec<&str> = expected
        .split(", ")
        .map(|k| k.trim_matches('`'))
        .filter(|k| !k.is_empty())
        .collect();
    let hint = suggest(word, known.iter().copied())
        .map(|k| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default();
    let noun = if what == "phase" {
        "a phase is"
    } else {
        "expected"
    };
    Some(format!(
        "unknown {what} `{word}`{hint}; {noun} one of {expected}"
    ))
}

/// 1-based line and column (in characters) of byte `offset` in `text`
/// (an offset inside a character counts as that character's).
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// Most problems listed; past that only their number is. Nobody reads
/// thousands of lines, and each costs a scan of the file for its line: a
/// file of 30 000 bad tasks took 23 s to report before this limit.
pub const MAX_SHOWN: usize = 50;
/// Longest message shown, in characters. Messages quote the file's
/// values, and a value may be as long as the file.
pub const MAX_MESSAGE_CHARS: usize = 300;

/// The first [`MAX_SHOWN`] problems as "FILE:LINE:COL: message", in file
/// order, one a line, then how many more there are.
pub fn render(file: &str, text: &str, problems: &[Problem]) -> String {
    let mut sorted: Vec<&Problem> = problems.iter().collect();
    sorted.sort_by_key(|p| p.span.as_ref().map_or(0, |s| s.start));
    let mut lines: Vec<String> = sorted
        .iter()
        .take(MAX_SHOWN)
        .map(|p| {
            let message = shorten(&p.message, MAX_MESSAGE_CHARS);
            match &p.span {
                Some(s) => {
                    let (line, col) = line_col(text, s.start);
                    format!("{file}:{line}:{col}: {message}")
                }
                None => format!("{file}: {message}"),
            }
        })
        .collect();
    if sorted.len() > MAX_SHOWN {
        lines.push(format!(
            "{file}: ... and {} more problems",
            sorted.len() - MAX_SHOWN
        ));
    }
    lines.join("\n")
}

/// `s` cut to `max` characters, marked with "..." if it was longer.
fn shorten(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(max) {
        Some((end, _)) => format!("{}...", &s[..end]).into(),
        None => s.into(),
    }
}

/// Words longer than this get no suggestion: a typo is short, and the
/// edit distance costs the product of the two lengths (two 20 000-letter
/// names took 3 GB).
const MAX_SUGGEST_CHARS: usize = 64;

/// The closest of `known` to `word`, if close enough to be a typo.
pub fn suggest<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let len = word.chars().count();
    if len > MAX_SUGGEST_CHARS {
        return None;
    }
    known
        .into_iter()
        // The distance is at least the difference in length, and only
        // distances up to 2 are suggested.
        .filter(|k| k.chars().count().abs_diff(len) <= 2)
        .map(|k| (edit_distance(word, k), k))
        .filter(|&(d, k)| d > 0 && d <= 2 && d <= k.chars().count() / 2)
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k)
}

/// Edits (insert, delete, substitute, swap two neighbours) from `a` to
/// `b`: a swap counts once, since "pnog" is a typo of "pong".
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_lines_and_columns() {
        let t = "a = 1\nbé = 2\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 6), (2, 1));
        // 'é' is two bytes but one column.
        assert_eq!(line_col(t, t.find('=').unwrap()), (1, 3));
        assert_eq!(line_col(t, t.rfind('=').unwrap()), (2, 4));
        assert_eq!(line_col(t, 999), (3, 1));
    }

    #[test]
    fn problems_render_in_file_order() {
        let t = "x\ny\nz\n";
        let out = render(
            "f.toml",
            t,
            &[
                Problem::at(4..5, "third"),
                Problem::whole("whole"),
                Problem::at(2..3, "second"),
            ],
        );
        assert_eq!(out, "f.toml: whole\nf.toml:2:1: second\nf.toml:3:1: third");
    }

    #[test]
    fn toml_errors_speak_of_fields_and_phases_with_a_guess() {
        let p = |text: &str| Problem::from_toml(&super::super::schema::parse(text).unwrap_err());
        let e = p("[[task]]\nnme = \"a\"\nphases = [\"yield\"]\n");
        assert!(
            e.message
                .starts_with("unknown field `nme` (did you mean `name`?); expected one of"),
            "{e:?}"
        );
        let e = p("[[task]]\nname = \"a\"\nphases = [{ slep = \"1ms\" }]\n");
        assert!(
            e.message.starts_with(
                "unknown phase `slep` (did you mean `sleep`?); a phase is one of `run`"
            ),
            "{e:?}"
        );
        let e = p("[[task]]\nname = \"a\"\nphases = [{ run = 5 }]\n");
        assert!(
            e.message
                .ends_with("(durations are strings with a unit, e.g. \"5ms\")"),
            "{e:?}"
        );
        let e = p("[[task]]\nname = \"a\"\nphases = [{ run = \"1ms\", sleep = \"1ms\" }]\n");
        assert!(
            e.message.starts_with("a phase has exactly one key"),
            "{e:?}"
        );
        assert!(e.span.is_some());
    }

    #[test]
    fn a_flood_of_problems_is_cut_short_and_long_values_too() {
        let text = "x\n".repeat(1000);
        let many: Vec<Problem> = (0..1000)
            .map(|i| Problem::at(2 * i..2 * i + 1, format!("bad {i}")))
            .collect();
        let out = render("f.toml", &text, &many);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), MAX_SHOWN + 1);
        assert_eq!(lines[0], "f.toml:1:1: bad 0");
        assert_eq!(lines[MAX_SHOWN], "f.toml: ... and 950 more problems");
        let long = render("f.toml", "", &[Problem::whole("é".repeat(10_000))]);
        assert_eq!(
            long.chars().count(),
            "f.toml: ".len() + MAX_MESSAGE_CHARS + 3
        );
        assert!(long.ends_with("é..."));
        // An offset inside a character does not panic.
        assert_eq!(line_col("é", 1), (1, 1));
    }

    #[test]
    fn long_words_get_no_suggestion_and_cost_nothing() {
        let a = "a".repeat(100_000);
        let b = "b".repeat(100_000);
        let t = std::time::Instant::now();
        assert_eq!(suggest(&a, [b.as_str(), "ping"]), None);
        assert_eq!(suggest("pnog", [b.as_str(), "pong"]), Some("pong"));
        assert!(t.elapsed().as_secs() < 1, "{:?}", t.elapsed());
    }

    #[test]
    fn typos_get_a_suggestion_and_strangers_do_not() {
        assert_eq!(suggest("pnog", ["ping", "pong"]), Some("pong"));
        assert_eq!(suggest("hog", ["hogs", "web"]), Some("hogs"));
        assert_eq!(suggest("zzzzzz", ["ping", "pong"]), None);
        assert_eq!(suggest("a", ["b"]), None);
    }
}
