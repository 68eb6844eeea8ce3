//! A small, strict parser of the Prometheus text exposition format (version 0.0.4), enough to
//! check what `/metrics` serves: `# HELP` and `# TYPE` lines, samples with labels (escapes
//! included) and values, and histogram families whose buckets add up.

use std::collections::{BTreeMap, HashMap};

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed exposition.
#[derive(Debug, Default)]
pub struct Exposition {
    pub help: HashMap<String, String>,
    pub types: HashMap<String, String>,
    pub samples: Vec<Sample>,
}

/// Parses `text`, panicking (with the line) on anything malformed, and checks that every sample
/// belongs to a family with a `# TYPE` and a `# HELP` line, and that every histogram series has
/// cumulative buckets ending in `+Inf` equal to its `_count`.
pub fn parse(text: &str) -> Exposition {
    let mut exposition = Exposition::default();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            check_name(name, line);
            exposition.help.insert(name.to_owned(), help.to_owned());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("bad TYPE: {line}"));
            check_name(name, line);
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "unknown type in {line}"
            );
            exposition.types.insert(name.to_owned(), kind.to_owned());
        } else if line.starts_with('#') {
            continue;
        } else {
            exposition.samples.push(sample(line));
        }
    }
    for sample in &exposition.samples {
        let family = exposition.family(&sample.name);
        assert!(exposition.types.contains_key(&family), "no TYPE for {}", sample.name);
        assert!(
            exposition.help.get(&family).is_some_and(|h| !h.is_empty()),
            "no HELP for {}",
            sample.name
        );
    }
    exposition.check_histograms();
    exposition
}

fn check_name(name: &str, line: &str) {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    assert!(
        first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
        "bad metric name in {line}"
    );
}

fn sample(line: &str) -> Sample {
    let name_end = line.find(['{', ' ']).unwrap_or_else(|| panic!("no value: {line}"));
    let name = &line[..name_end];
    check_name(name, line);
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        let close = loop {
            // A label: name="value", then `,` or `}`.
            while chars.peek().is_some_and(|(_, c)| *c == ',' || *c == ' ') {
                chars.next();
            }
            if let Some((i, '}')) = chars.peek().copied() {
                break i;
            }
            let mut key = String::new();
            for (_, c) in chars.by_ref() {
                if c == '=' {
                    break;
                }
                key.push(c);
            }
            check_name(&key, line);
            assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "unquoted label value: {line}");
            let mut value = String::new();
            loop {
                match chars.next().map(|(_, c)| c) {
                    Some('"') => break,
                    Some('\\') => match chars.next().map(|(_, c)| c) {
                        Some('n') => value.push('\n'),
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        other => panic!("bad escape {other:?} in {line}"),
                    },
                    Some(c) => value.push(c),
                    None => panic!("unterminated label value: {line}"),
                }
            }
            assert!(labels.insert(key, value).is_none(), "repeated label in {line}");
        };
        rest = &after[close + 1..];
    }
    let mut fields = rest.split_whitespace();
    let value = fields.next().unwrap_or_else(|| panic!("no value: {line}"));
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().unwrap_or_else(|_| panic!("bad value `{v}` in {line}")),
    };
    if let Some(timestamp) = fields.next() {
        timestamp.parse::<i64>().unwrap_or_else(|_| panic!("bad timestamp in {line}"));
    }
    assert!(fields.next().is_none(), "trailing fields: {line}");
    Sample { name: name.to_owned(), labels, value }
}

impl Exposition {
    /// The family a sample belongs to (`x_bucket`, `x_sum`, `x_count` of histogram `x`).
    pub fn family(&self, name: &str) -> String {
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                if matches!(self.types.get(base).map(String::as_str), Some("histogram" | "summary"))
                {
                    return base.to_owned();
                }
            }
        }
        name.to_owned()
    }

    /// The samples of `name` whose labels include every pair of `labels`.
    pub fn series<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// The sum of the samples of `name` whose labels include `labels` (0 when there is none:
    /// a counter that never moved has no series yet).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.series(name, labels).map(|s| s.value).sum()
    }

    /// The one sample of `name` with exactly `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<_> =
            self.series(name, labels).filter(|s| s.labels.len() == labels.len()).collect();
        assert!(found.len() <= 1, "{name} {labels:?} matches {found:?}");
        found.first().map(|s| s.value)
    }

    fn check_histograms(&self) {
        for (family, _) in self.types.iter().filter(|(_, kind)| *kind == "histogram") {
            let count_name = format!("{family}_count");
            for count in self.samples.iter().filter(|s| s.name == count_name) {
                let bucket_name = format!("{family}_bucket");
                let mut buckets: Vec<(f64, f64)> = self
                    .samples
                    .iter()
                    .filter(|s| {
                        s.name == bucket_name && {
                            let mut labels = s.labels.clone();
                            labels.remove("le");
                            labels == count.labels
                        }
                    })
                    .map(|s| {
                        let le = &s.labels["le"];
                        let bound = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap() };
                        (bound, s.value)
                    })
                    .collect();
                buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
                assert!(!buckets.is_empty(), "{family} {:?} has no buckets", count.labels);
                assert!(
                    buckets.windows(2).all(|w| w[0].1 <= w[1].1),
                    "{family} {:?}: buckets are not cumulative: {buckets:?}",
                    count.labels
                );
                let last = buckets[buckets.len() - 1];
                assert_eq!(last.0, f64::INFINITY, "{family} {:?} has no +Inf bucket", count.labels);
                assert_eq!(
                    last.1, count.value,
                    "{family} {:?}: +Inf bucket != count",
                    count.labels
                );
            }
        }
    }
}

#[test]
fn the_parser_reads_the_format_and_refuses_broken_histograms() {
    let text = "# HELP a_total Things.\n# TYPE a_total counter\n\
                a_total{x=\"q\\\"uote\\\\d\\n\",y=\"2\"} 3\n\
                # HELP h Latency.\n# TYPE h histogram\n\
                h_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.75\nh_count 2\n";
    let parsed = parse(text);
    assert_eq!(parsed.value("a_total", &[("x", "q\"uote\\d\n"), ("y", "2")]), Some(3.0));
    assert_eq!(parsed.sum("h_count", &[]), 2.0);
    let broken = text.replace("h_count 2", "h_count 3");
    assert!(std::panic::catch_unwind(|| parse(&broken)).is_err());
    let untyped = "x 1\n";
    assert!(std::panic::catch_unwind(|| parse(untyped)).is_err());
}
