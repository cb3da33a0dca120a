//! `COPY table [(columns)] FROM STDIN`: rows in PostgreSQL's text or CSV format.
//!
//! The wire layer feeds the client's CopyData bytes to [`CopyIn::data`] as they arrive and
//! calls [`CopyIn::finish`] at CopyDone. Bytes are split into records (a record may span
//! CopyData messages; in CSV a quoted field may span lines), each record into fields, and
//! each field parsed with the column type's text input function; rows are then completed
//! with defaults, checked and inserted exactly as INSERT does — through the statement's
//! transaction, so the whole COPY commits or aborts as one statement.
//!
//! Formats (PostgreSQL's `COPY` reference):
//! * text: fields split by the delimiter (tab), `\N` is NULL, backslash escapes
//!   (`\t \n \r \b \f \v \\`, octal `\NNN`, hex `\xHH`);
//! * csv: fields split by the delimiter (`,`), quoted with `"` (a doubled quote, or the
//!   ESCAPE character before a quote, is a literal quote), an unquoted empty field is
//!   NULL, HEADER skips the first line;
//! * in both, a line `\.` ends the data.
//!
//! Caveats: binary format is not supported (0A000); rows go into one transaction, so a
//! COPY is bounded by the transaction write-set limit.

use std::sync::Arc;

use datafusion::sql::sqlparser::ast::{CopyOption, CopySource, CopyTarget, Statement};
use txn::Txn;

use crate::catalog::{Catalog, TableDef};
use crate::error::{sqlstate, Error, Result};
use crate::exec::dml::{complete_row, WriteContext};
use crate::exec::names::{ident, object_name};
use crate::exec::Planner;
use crate::types::Datum;

const BAD_COPY_FORMAT: &str = "22P04";

#[derive(Debug, Clone, PartialEq)]
enum Format {
    Text,
    Csv { quote: u8, escape: u8 },
}

/// An open `COPY … FROM STDIN`.
pub struct CopyIn {
    table: TableDef,
    columns: Vec<usize>,
    format: Format,
    delimiter: u8,
    null: String,
    skip_header: bool,
    ctx: WriteContext,
    state: datafusion::execution::session_state::SessionState,
    /// Bytes of an incomplete record.
    pending: Vec<u8>,
    /// The end-of-data marker `\.` was seen (text format).
    ended: bool,
    line: u64,
    rows: u64,
}

impl CopyIn {
    /// Checks a `COPY … FROM STDIN` statement against the catalog and opens it.
    pub fn open(
        engine: &Planner,
        txn: &Arc<Txn>,
        catalog: &Arc<Catalog>,
        s: &Statement,
    ) -> Result<CopyIn> {
        let Statement::Copy {
            source,
            to,
            target,
            options,
            ..
        } = s
        else {
            return Err(Error::internal("not a COPY statement"));
        };
        if *to || !matches!(target, CopyTarget::Stdin) {
            return Err(Error::unsupported("COPY other than FROM STDIN"));
        }
        let CopySource::Table {
            table_name,
            columns,
        } = source
        else {
            return Err(Error::unsupported("COPY from a query"));
        };
        let table = (**catalog.table(&object_name(table_name)?)?).clone();
        let columns = if columns.is_empty() {
            (0..table.columns.len()).collect()
        } else {
            columns
                .iter()
                .map(|c| table.column(&ident(c)))
                .collect::<Result<Vec<_>>>()?
        };
        let mut csv = false;
        let (mut delimiter, mut null, mut header, mut quote, mut escape) =
            (None, None, false, b'"', None);
        for option in options {
            match option {
                CopyOption::Format(f) => match ident(f).as_str() {
                    "text" => csv = false,
                    "csv" => csv = true,
                    "binary" => return Err(Error::unsupported("COPY in binary format")),
                    other => {
                        return Err(Error::new(
                            sqlstate::INVALID_PARAMETER_VALUE,
                            format!("COPY format \"{other}\" not recognized"),
                        ))
                    }
                },
                CopyOption::Delimiter(c) => delimiter = Some(single_byte(*c, "delimiter")?),
                CopyOption::Null(n) => null = Some(n.clone()),
                CopyOption::Header(h) => header = *h,
                CopyOption::Quote(c) => quote = single_byte(*c, "quote")?,
                CopyOption::Escape(c) => escape = Some(single_byte(*c, "escape")?),
                CopyOption::Freeze(_) | CopyOption::Encoding(_) => {}
                other => return Err(Error::unsupported(format!("COPY option {other}"))),
            }
        }
        if header && !csv {
            return Err(Error::unsupported("COPY HEADER in text format"));
        }
        let format = if csv {
            Format::Csv {
                quote,
                escape: escape.unwrap_or(quote),
            }
        } else {
            Format::Text
        };
        let state = engine.query.session(catalog.clone(), txn.clone());
        let ctx = WriteContext::new(&state, &table)?;
        Ok(CopyIn {
            columns,
            delimiter: delimiter.unwrap_or(if csv { b',' } else { b'\t' }),
            null: null.unwrap_or_else(|| if csv { String::new() } else { "\\N".into() }),
            skip_header: header,
            format,
            table,
            ctx,
            state,
            pending: Vec::new(),
            ended: false,
            line: 0,
            rows: 0,
        })
    }

    /// Number of columns the client sends per row.
    pub fn column_count(&self) -> usize {
        self.columns.len()
    }

    /// Consumes the complete records in `bytes` (plus what earlier calls left).
    pub async fn data(&mut self, engine: &Planner, txn: &Arc<Txn>, bytes: &[u8]) -> Result<()> {
        let mut pending = std::mem::take(&mut self.pending);
        pending.extend_from_slice(bytes);
        let mut start = 0;
        while !self.ended {
            let Some(end) = record_end(&pending[start..], &self.format) else {
                break;
            };
            self.record(engine, txn, &pending[start..start + end])
                .await?;
            start += end + 1;
        }
        pending.drain(..start);
        self.pending = pending;
        Ok(())
    }

    /// Ends the data (a last record may lack its newline); returns the rows copied.
    pub async fn finish(mut self, engine: &Planner, txn: &Arc<Txn>) -> Result<u64> {
        if !self.ended && !self.pending.is_empty() {
            let record = std::mem::take(&mut self.pending);
            self.record(engine, txn, &record).await?;
        }
        Ok(self.rows)
    }

    async fn record(&mut self, engine: &Planner, txn: &Arc<Txn>, record: &[u8]) -> Result<()> {
        self.line += 1;
        let record = record.strip_suffix(b"\r").unwrap_or(record);
        if self.skip_header && self.line == 1 {
            return Ok(());
        }
        // `\.` alone on a line ends the data (psql sends it in both formats).
        if record == b"\\." {
            self.ended = true;
            return Ok(());
        }
        let fields = match self.format {
            Format::Text => text_fields(record, self.delimiter, &self.null),
            Format::Csv { quote, escape } => {
                csv_fields(record, self.delimiter, quote, escape, &self.null)
            }
        }
        .map_err(|e| self.at_line(e))?;
        if fields.len() > self.columns.len() {
            return Err(self.at_line(Error::new(
                BAD_COPY_FORMAT,
                "extra data after last expected column",
            )));
        }
        if fields.len() < self.columns.len() {
            let missing = &self.table.columns[self.columns[fields.len()]].name;
            return Err(self.at_line(Error::new(
                BAD_COPY_FORMAT,
                format!("missing data for column \"{missing}\""),
            )));
        }
        let mut values = Vec::with_capacity(fields.len());
        for (field, &col) in fields.into_iter().zip(&self.columns) {
            let def = &self.table.columns[col];
            values.push(Some(match field {
                None => Datum::Null,
                Some(text) => Datum::parse_text(&text, &def.ty)
                    .map_err(|e| self.at_line(Error::from(e.with_column(&def.name))))?,
            }));
        }
        let table = &self.table;
        let row =
            complete_row(engine, txn, Some(&self.state), table, &self.columns, values).await?;
        self.ctx.check(table, &row)?;
        let rowid = crate::exec::dml::next_rowid(engine, table).await?;
        crate::table::insert_row_or_fail(txn, table, &row, rowid).await?;
        self.rows += 1;
        Ok(())
    }

    /// Adds PostgreSQL's context line to an error about the current record.
    fn at_line(&self, e: Error) -> Error {
        let context = format!("COPY {}, line {}", self.table.name, self.line);
        match e.detail {
            Some(_) => e,
            None => e.with_detail(context),
        }
    }
}

/// The index of the newline that ends the first record of `bytes`, if complete (in CSV,
/// newlines inside quotes belong to the field).
fn record_end(bytes: &[u8], format: &Format) -> Option<usize> {
    match *format {
        Format::Text => bytes.iter().position(|&b| b == b'\n'),
        Format::Csv { quote, escape } => {
            let mut quoted = false;
            let mut i = 0;
            while i < bytes.len() {
                let b = bytes[i];
                if quoted && b == escape && escape != quote && bytes.get(i + 1) == Some(&quote) {
                    i += 2;
                    continue;
                }
                if b == quote {
                    quoted = !quoted;
                } else if b == b'\n' && !quoted {
                    return Some(i);
                }
                i += 1;
            }
            None
        }
    }
}

fn single_byte(c: char, what: &str) -> Result<u8> {
    u8::try_from(c).ok().filter(u8::is_ascii).ok_or_else(|| {
        Error::new(
            sqlstate::FEATURE_NOT_SUPPORTED,
            format!("COPY {what} must be a single one-byte character"),
        )
    })
}

/// Splits a text-format line; `None` is NULL.
fn text_fields(line: &[u8], delimiter: u8, null: &str) -> Result<Vec<Option<String>>> {
    let mut fields = Vec::new();
    // Split at delimiters that are not backslash-escaped.
    let mut raws = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < line.len() {
        if line[i] == b'\\' {
            i += 2;
        } else if line[i] == delimiter {
            raws.push(&line[start..i]);
            i += 1;
            start = i;
        } else {
            i += 1;
        }
    }
    raws.push(&line[start.min(line.len())..]);
    for raw in raws {
        if raw == null.as_bytes() {
            fields.push(None);
            continue;
        }
        let mut out = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            if raw[i] != b'\\' || i + 1 == raw.len() {
                out.push(raw[i]);
                i += 1;
                continue;
            }
            let c = raw[i + 1];
            i += 2;
            match c {
                b't' => out.push(b'\t'),
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b'b' => out.push(8),
                b'f' => out.push(12),
                b'v' => out.push(11),
                b'0'..=b'7' => {
                    let mut v = u32::from(c - b'0');
                    let mut digits = 1;
                    while digits < 3 && i < raw.len() && (b'0'..=b'7').contains(&raw[i]) {
                        v = v * 8 + u32::from(raw[i] - b'0');
                        i += 1;
                        digits += 1;
                    }
                    out.push((v & 0xff) as u8);
                }
                b'x' if i < raw.len() && raw[i].is_ascii_hexdigit() => {
                    let mut v = 0u32;
                    let mut digits = 0;
                    while digits < 2 && i < raw.len() && raw[i].is_ascii_hexdigit() {
                        v = v * 16 + (raw[i] as char).to_digit(16).unwrap_or(0);
                        i += 1;
                        digits += 1;
                    }
                    out.push(v as u8);
                }
                other => out.push(other),
            }
        }
        fields.push(Some(utf8(out)?));
    }
    Ok(fields)
}

/// Splits a CSV record; `None` is NULL (an unquoted field equal to the NULL string).
fn csv_fields(
    record: &[u8],
    delimiter: u8,
    quote: u8,
    escape: u8,
    null: &str,
) -> Result<Vec<Option<String>>> {
    let mut fields = Vec::new();
    let mut field = Vec::new();
    let mut quoted_field = false;
    let mut in_quotes = false;
    let mut i = 0;
    loop {
        if i == record.len() || (!in_quotes && record[i] == delimiter) {
            if in_quotes {
                return Err(Error::new(BAD_COPY_FORMAT, "unterminated CSV quoted field"));
            }
            let value = std::mem::take(&mut field);
            fields.push(if !quoted_field && value == null.as_bytes() {
                None
            } else {
                Some(utf8(value)?)
            });
            quoted_field = false;
            if i == record.len() {
                return Ok(fields);
            }
            i += 1;
            continue;
        }
        let b = record[i];
        if in_quotes && b == escape && record.get(i + 1) == Some(&quote) {
            field.push(quote);
            i += 2;
        } else if b == quote {
            in_quotes = !in_quotes;
            quoted_field = true;
            i += 1;
        } else {
            field.push(b);
            i += 1;
        }
    }
}

fn utf8(bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes)
        .map_err(|_| Error::new("22021", "invalid byte sequence for encoding \"UTF8\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_fields_unescape_and_null() {
        let f = text_fields(b"1\t\\N\ta\\tb\\\\c\\101\\x41\tx\\\tz", b'\t', "\\N").unwrap();
        assert_eq!(
            f,
            vec![
                Some("1".into()),
                None,
                Some("a\tb\\cAA".into()),
                Some("x\tz".into())
            ]
        );
    }

    #[test]
    fn csv_fields_quotes_and_null() {
        let f = csv_fields(b"1,,\"\",\"a,\"\"b\"\"\"", b',', b'"', b'"', "").unwrap();
        assert_eq!(
            f,
            vec![
                Some("1".into()),
                None,
                Some(String::new()),
                Some("a,\"b\"".into())
            ]
        );
        assert!(csv_fields(b"\"open", b',', b'"', b'"', "").is_err());
    }
}
