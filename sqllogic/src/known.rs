//! The known-failures list: records of our own files that fail for features not built yet,
//! so CI can gate on regressions. One record per line, `path:line  # reason`, where path is
//! the test file's path relative to the repository root and line the line the runner
//! reports for the record (its `statement`/`query` line); `#` comments and blank lines are
//! allowed.
//!
//! A failing record that is listed is a *known* failure, not a failure. A listed record
//! that passes is a failure (`FIXED: remove it from the list`), and so is a listed line of
//! a file that was run where no record ran (`STALE`), so the list can only shrink. A record
//! matches an entry when the record's path ends with the entry's path (at a `/`): the entry
//! `sqllogic/slt/a.slt:3` matches `../x/sqllogic/slt/a.slt:3`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context as _};

/// One entry of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownFailure {
    /// The test file's path (`/` separators, no leading `./`).
    pub path: String,
    /// The record's line.
    pub line: u32,
    /// The comment after the entry, if any.
    pub reason: String,
}

/// A parsed known-failures list.
#[derive(Debug, Clone, Default)]
pub struct KnownFailures {
    entries: Vec<KnownFailure>,
}

fn normalize(path: &str) -> String {
    let p = path.replace('\\', "/");
    let mut p = p.as_str();
    while let Some(rest) = p.strip_prefix("./") {
        p = rest;
    }
    p.to_string()
}

/// Whether `file` (a record's path) is `entry` or ends with `/entry`.
fn path_matches(file: &str, entry: &str) -> bool {
    match file.strip_suffix(entry) {
        Some("") => true,
        Some(prefix) => prefix.ends_with('/'),
        None => false,
    }
}

impl KnownFailures {
    /// Reads the list at `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading known-failures list {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in known-failures list {}", path.display()))
    }

    /// Parses the text of a list. Malformed and duplicate entries are errors.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut entries: Vec<KnownFailure> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let (entry, reason) = match raw.find('#') {
                Some(at) => (&raw[..at], raw[at + 1..].trim()),
                None => (raw, ""),
            };
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let Some((path, line)) = entry.rsplit_once(':') else {
                bail!(
                    "line {}: expected `path:line  # reason`, got {raw:?}",
                    i + 1
                );
            };
            let line: u32 = match line.trim().parse() {
                Ok(n) if n > 0 => n,
                _ => bail!("line {}: {line:?} is not a line number", i + 1),
            };
            let path = normalize(path.trim());
            if path.is_empty() {
                bail!("line {}: no path in {raw:?}", i + 1);
            }
            if entries.iter().any(|e| e.path == path && e.line == line) {
                bail!("line {}: {path}:{line} is listed twice", i + 1);
            }
            entries.push(KnownFailure {
                path,
                line,
                reason: reason.to_string(),
            });
        }
        Ok(Self { entries })
    }

    pub fn entries(&self) -> &[KnownFailure] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries for the test file at `file`, by line.
    pub fn for_file(&self, file: &str) -> BTreeMap<u32, &KnownFailure> {
        let file = normalize(file);
        self.entries
            .iter()
            .filter(|e| path_matches(&file, &e.path))
            .map(|e| (e.line, e))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_entries_comments_and_blank_lines() {
        let list = KnownFailures::parse(
            "# header\n\n\
             sqllogic/slt/types.slt:35  # numeric scale differs\n\
             ./sqllogic/slt/joins.slt:12\n   \n",
        )
        .unwrap();
        assert_eq!(
            list.entries(),
            &[
                KnownFailure {
                    path: "sqllogic/slt/types.slt".into(),
                    line: 35,
                    reason: "numeric scale differs".into()
                },
                KnownFailure {
                    path: "sqllogic/slt/joins.slt".into(),
                    line: 12,
                    reason: String::new()
                },
            ]
        );
    }

    #[test]
    fn rejects_malformed_and_duplicate_entries() {
        assert!(KnownFailures::parse("sqllogic/slt/a.slt\n").is_err());
        assert!(KnownFailures::parse("sqllogic/slt/a.slt:x # r\n").is_err());
        assert!(KnownFailures::parse("sqllogic/slt/a.slt:0\n").is_err());
        assert!(KnownFailures::parse(":3\n").is_err());
        assert!(KnownFailures::parse("a.slt:3 # one\n./a.slt:3 # two\n").is_err());
    }

    #[test]
    fn matches_by_path_ending_at_a_separator() {
        let list =
            KnownFailures::parse("sqllogic/slt/a.slt:3 # r\nsqllogic/slt/a.slt:9\n").unwrap();
        let lines = |f: &str| list.for_file(f).into_keys().collect::<Vec<_>>();
        assert_eq!(lines("sqllogic/slt/a.slt"), vec![3, 9]);
        assert_eq!(lines("./sqllogic/slt/a.slt"), vec![3, 9]);
        assert_eq!(lines("../x/sqllogic/slt/a.slt"), vec![3, 9]);
        assert_eq!(lines("..\\x\\sqllogic\\slt\\a.slt"), vec![3, 9]);
        assert!(lines("../x/mysqllogic/slt/a.slt").is_empty());
        assert!(lines("sqllogic/slt/b.slt").is_empty());
        assert!(lines("slt/a.slt").is_empty());
    }
}
