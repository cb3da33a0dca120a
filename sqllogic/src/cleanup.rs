//! Fresh database state per file. A Meridian cluster has one database, so instead of a new
//! database per file the runner drops, before and after each file, every table, view,
//! index and sequence the file's SQL creates (`DROP ... IF EXISTS`, errors ignored). This
//! needs nothing from the server beyond `DROP TABLE/VIEW/INDEX/SEQUENCE IF EXISTS`.

use std::collections::HashSet;

/// The kinds of objects the runner cleans up, in the order they are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    View,
    Index,
    Table,
    Sequence,
}

impl ObjectKind {
    fn keyword(self) -> &'static str {
        match self {
            ObjectKind::View => "VIEW",
            ObjectKind::Index => "INDEX",
            ObjectKind::Table => "TABLE",
            ObjectKind::Sequence => "SEQUENCE",
        }
    }
}

/// Objects a file creates, in creation order (duplicates removed).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Objects {
    list: Vec<(ObjectKind, String)>,
    seen: HashSet<(ObjectKind, String)>,
}

impl Objects {
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    fn push(&mut self, kind: ObjectKind, name: String) {
        if self.seen.insert((kind, name.clone())) {
            self.list.push((kind, name));
        }
    }

    /// Records the objects `sql` creates (`CREATE [OR REPLACE] [TEMP] [UNIQUE] TABLE|VIEW|
    /// INDEX|SEQUENCE [CONCURRENTLY] [IF NOT EXISTS] name`, and `RENAME TO name`).
    pub fn scan(&mut self, sql: &str) {
        let tokens = tokenize(sql);
        let upper: Vec<String> = tokens.iter().map(|t| t.to_ascii_uppercase()).collect();
        let mut i = 0;
        while i < tokens.len() {
            if upper[i] == "CREATE" {
                let mut j = i + 1;
                while j < tokens.len()
                    && matches!(
                        upper[j].as_str(),
                        "OR" | "REPLACE"
                            | "TEMP"
                            | "TEMPORARY"
                            | "UNLOGGED"
                            | "UNIQUE"
                            | "MATERIALIZED"
                            | "RECURSIVE"
                            | "GLOBAL"
                            | "LOCAL"
                    )
                {
                    j += 1;
                }
                let kind = match upper.get(j).map(String::as_str) {
                    Some("TABLE") => Some(ObjectKind::Table),
                    Some("VIEW") => Some(ObjectKind::View),
                    Some("INDEX") => Some(ObjectKind::Index),
                    Some("SEQUENCE") => Some(ObjectKind::Sequence),
                    _ => None,
                };
                if let Some(kind) = kind {
                    j += 1;
                    if upper.get(j).map(String::as_str) == Some("CONCURRENTLY") {
                        j += 1;
                    }
                    if upper.get(j).map(String::as_str) == Some("IF")
                        && upper.get(j + 1).map(String::as_str) == Some("NOT")
                        && upper.get(j + 2).map(String::as_str) == Some("EXISTS")
                    {
                        j += 3;
                    }
                    if let Some(name) = tokens.get(j) {
                        // `CREATE INDEX ON t (a)` has no name.
                        if is_name(name) && upper[j] != "ON" {
                            self.push(kind, name.clone());
                        }
                    }
                    i = j;
                }
            } else if upper[i] == "RENAME"
                && upper.get(i + 1).map(String::as_str) == Some("TO")
                && tokens.get(i + 2).is_some_and(|t| is_name(t))
            {
                // ALTER TABLE/VIEW/INDEX a RENAME TO b: the kind is the ALTER's.
                let kind = match upper
                    .iter()
                    .take(i)
                    .rev()
                    .find(|t| matches!(t.as_str(), "TABLE" | "VIEW" | "INDEX" | "SEQUENCE"))
                {
                    Some(t) if t == "VIEW" => ObjectKind::View,
                    Some(t) if t == "INDEX" => ObjectKind::Index,
                    Some(t) if t == "SEQUENCE" => ObjectKind::Sequence,
                    _ => ObjectKind::Table,
                };
                self.push(kind, tokens[i + 2].clone());
            }
            i += 1;
        }
    }

    /// The statements that remove the objects: views (newest first), indexes, tables
    /// (newest first, so tables referencing others go before them), sequences.
    pub fn drop_statements(&self) -> Vec<String> {
        let mut out = Vec::new();
        for kind in [
            ObjectKind::View,
            ObjectKind::Index,
            ObjectKind::Table,
            ObjectKind::Sequence,
        ] {
            for (k, name) in self.list.iter().rev() {
                if *k == kind {
                    out.push(format!("DROP {} IF EXISTS {name}", kind.keyword()));
                }
            }
        }
        out
    }
}

fn is_name(t: &str) -> bool {
    let first = t.chars().next();
    first.is_some_and(|c| c == '"' || c == '_' || c.is_alphabetic())
}

/// Splits SQL into words, quoted identifiers ("A b") and single punctuation characters;
/// string literals and comments are skipped. `schema.name` stays one token.
fn tokenize(sql: &str) -> Vec<String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
        } else if c == '\'' {
            i += 1;
            while i < chars.len() {
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
        } else if c == '"' || c.is_alphanumeric() || c == '_' {
            let start = i;
            loop {
                if i < chars.len() && chars[i] == '"' {
                    i += 1;
                    while i < chars.len() && chars[i] != '"' {
                        i += 1;
                    }
                    i += 1;
                } else if i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
                {
                    i += 1;
                } else {
                    break;
                }
                if i < chars.len() && chars[i] == '.' {
                    i += 1;
                    continue;
                }
                if i >= chars.len() || !(chars[i].is_alphanumeric() || chars[i] == '_') {
                    break;
                }
            }
            let end = i.min(chars.len());
            out.push(chars[start..end].iter().collect());
        } else {
            out.push(c.to_string());
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_created_objects() {
        let mut o = Objects::default();
        o.scan("CREATE TABLE t1(a INTEGER, b TEXT)");
        o.scan("create unique index if not exists t1_a ON t1(a)");
        o.scan("CREATE INDEX ON t1 (b)");
        o.scan("CREATE OR REPLACE VIEW v1 AS SELECT 'CREATE TABLE nope(x)' FROM t1");
        o.scan("CREATE TABLE IF NOT EXISTS \"Odd Name\" (x int)");
        o.scan("CREATE TABLE public.t2 (id serial PRIMARY KEY, r int REFERENCES t1(a))");
        o.scan("ALTER TABLE t2 RENAME TO t3");
        o.scan("ALTER TABLE t1 RENAME COLUMN a TO z");
        o.scan("CREATE TABLE t1(a int)");
        assert_eq!(
            o.drop_statements(),
            vec![
                "DROP VIEW IF EXISTS v1",
                "DROP INDEX IF EXISTS t1_a",
                "DROP TABLE IF EXISTS t3",
                "DROP TABLE IF EXISTS public.t2",
                "DROP TABLE IF EXISTS \"Odd Name\"",
                "DROP TABLE IF EXISTS t1",
            ]
        );
    }
}
