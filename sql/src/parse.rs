//! Statement parsing: DataFusion's sqlparser with the PostgreSQL dialect.
//!
//! Parse errors become SQLSTATE 42601 with PostgreSQL-like text. Input is bounded by the
//! wire protocol's message limit; a statement nests at most as deep as sqlparser's
//! recursion limit allows (deeper input is a clean error, never a stack overflow).

use datafusion::sql::sqlparser::ast::{
    CopyOption, CopySource, CopyTarget, Ident, Statement, VacuumStatement,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;
use planner::error::sqlstate;
use planner::{Error, Result};

/// Ends the message of a parse error that is an unsupported feature (0A000).
const NOT_SUPPORTED: &str = " is not supported";

/// Parses a query string into statements (empty statements dropped).
pub fn parse_statements(sql: &str) -> Result<Vec<Statement>> {
    Parser::new(&PostgreSqlDialect {})
        .with_recursion_limit(200)
        .try_with_sql(sql)
        .and_then(|mut p| {
            let mut statements = Vec::new();
            loop {
                while p.consume_token(&Token::SemiColon) {}
                if p.peek_token_ref().token == Token::EOF {
                    return Ok(statements);
                }
                let statement = if p.peek_keyword(Keyword::VACUUM) {
                    parse_vacuum(&mut p)?
                } else if p.peek_keyword(Keyword::COPY) {
                    parse_copy(&mut p)?
                } else {
                    p.parse_statement()?
                };
                statements.push(statement);
                if !p.consume_token(&Token::SemiColon) {
                    if p.peek_token_ref().token != Token::EOF {
                        return p.expected("end of statement", p.peek_token());
                    }
                    return Ok(statements);
                }
            }
        })
        .map_err(|e| {
            let message = match e {
                ParserError::RecursionLimitExceeded => {
                    return Error::new(
                        sqlstate::PROGRAM_LIMIT_EXCEEDED,
                        "statement is too deeply nested",
                    )
                }
                ParserError::ParserError(m) if m.ends_with(NOT_SUPPORTED) => {
                    return Error::new(sqlstate::FEATURE_NOT_SUPPORTED, m)
                }
                ParserError::ParserError(m) | ParserError::TokenizerError(m) => m,
            };
            Error::new(sqlstate::SYNTAX_ERROR, format!("syntax error: {message}"))
        })
}

/// PostgreSQL's `VACUUM [(options)] [FULL] [FREEZE] [VERBOSE] [ANALYZE] [table [(columns)]]`
/// (sqlparser knows only Redshift's form). Several tables are not supported.
fn parse_vacuum(p: &mut Parser) -> std::result::Result<Statement, ParserError> {
    p.expect_keyword(Keyword::VACUUM)?;
    if p.consume_token(&Token::LParen) {
        // Options: `name [value]`, comma separated; all accepted.
        let mut depth = 1;
        while depth > 0 {
            match p.next_token().token {
                Token::LParen => depth += 1,
                Token::RParen => depth -= 1,
                Token::EOF => return p.expected(")", p.peek_token()),
                _ => {}
            }
        }
    }
    let full = p.parse_keyword(Keyword::FULL);
    while p
        .parse_one_of_keywords(&[Keyword::FREEZE, Keyword::VERBOSE, Keyword::ANALYZE])
        .is_some()
    {}
    let table_name = match p.peek_token_ref().token {
        Token::EOF | Token::SemiColon => None,
        _ => Some(p.parse_object_name(false)?),
    };
    if table_name.is_some() && p.consume_token(&Token::LParen) {
        p.parse_comma_separated(|p| p.parse_identifier())?;
        p.expect_token(&Token::RParen)?;
    }
    if p.peek_token_ref().token == Token::Comma {
        return Err(ParserError::ParserError(format!(
            "VACUUM of several tables{NOT_SUPPORTED}"
        )));
    }
    Ok(Statement::Vacuum(VacuumStatement {
        full,
        sort_only: false,
        delete_only: false,
        reindex: false,
        recluster: false,
        table_name,
        threshold: None,
        boost: false,
    }))
}

/// PostgreSQL's `COPY table [(columns)] FROM STDIN | TO STDOUT [[WITH] (options)]`, with
/// the pre-9.0 option syntax too (`CSV HEADER DELIMITER ','`). sqlparser's COPY rejects
/// `FREEZE on`-style booleans, which `pgbench -i` sends.
fn parse_copy(p: &mut Parser) -> std::result::Result<Statement, ParserError> {
    p.expect_keyword(Keyword::COPY)?;
    if p.peek_token_ref().token == Token::LParen {
        return Err(ParserError::ParserError(format!(
            "COPY of a query{NOT_SUPPORTED}"
        )));
    }
    let table_name = p.parse_object_name(false)?;
    let mut columns = Vec::new();
    if p.consume_token(&Token::LParen) {
        columns = p.parse_comma_separated(|p| p.parse_identifier())?;
        p.expect_token(&Token::RParen)?;
    }
    let to = p.expect_one_of_keywords(&[Keyword::FROM, Keyword::TO])? == Keyword::TO;
    let target = match p.parse_one_of_keywords(&[Keyword::STDIN, Keyword::STDOUT]) {
        Some(Keyword::STDIN) if !to => CopyTarget::Stdin,
        Some(Keyword::STDOUT) if to => CopyTarget::Stdout,
        Some(_) => return p.expected("STDIN for FROM, STDOUT for TO", p.peek_token()),
        None => {
            return Err(ParserError::ParserError(format!(
                "COPY to or from a file or program (use psql's \\copy){NOT_SUPPORTED}"
            )))
        }
    };
    let _ = p.parse_keyword(Keyword::WITH);
    let mut options = Vec::new();
    if p.consume_token(&Token::LParen) {
        loop {
            let name = p.parse_identifier()?.value.to_lowercase();
            options.push(copy_option(p, &name)?);
            if !p.consume_token(&Token::Comma) {
                break;
            }
        }
        p.expect_token(&Token::RParen)?;
    } else {
        // Pre-9.0 syntax.
        while let Token::Word(ref w) = p.peek_token_ref().token {
            let option = w.value.to_lowercase();
            let _ = p.next_token();
            match option.as_str() {
                "binary" => options.push(CopyOption::Format(Ident::new("binary"))),
                "csv" => options.push(CopyOption::Format(Ident::new("csv"))),
                "header" => options.push(CopyOption::Header(true)),
                "delimiter" | "null" | "quote" | "escape" => {
                    let _ = p.parse_keyword(Keyword::AS);
                    options.push(copy_option(p, &option)?);
                }
                _ => {
                    return Err(ParserError::ParserError(format!(
                        "COPY option {option}{NOT_SUPPORTED}"
                    )))
                }
            }
        }
    }
    Ok(Statement::Copy {
        source: CopySource::Table {
            table_name,
            columns,
        },
        to,
        target,
        options,
        legacy_options: Vec::new(),
        values: Vec::new(),
    })
}

/// One `name [value]` COPY option.
fn copy_option(p: &mut Parser, name: &str) -> std::result::Result<CopyOption, ParserError> {
    let char_value = |p: &mut Parser| -> std::result::Result<char, ParserError> {
        let s = copy_string(p)?;
        let mut chars = s.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => Ok(c),
            _ => Err(ParserError::ParserError(format!(
                "COPY {name} must be a single one-byte character"
            ))),
        }
    };
    Ok(match name {
        "format" => CopyOption::Format(p.parse_identifier()?),
        "delimiter" => CopyOption::Delimiter(char_value(p)?),
        "null" => CopyOption::Null(copy_string(p)?),
        "quote" => CopyOption::Quote(char_value(p)?),
        "escape" => CopyOption::Escape(char_value(p)?),
        "encoding" => CopyOption::Encoding(copy_string(p)?),
        "header" => CopyOption::Header(copy_boolean(p)?),
        "freeze" => CopyOption::Freeze(copy_boolean(p)?),
        other => {
            return Err(ParserError::ParserError(format!(
                "COPY option {other}{NOT_SUPPORTED}"
            )))
        }
    })
}

/// A string option value, in any of PostgreSQL's string literal forms.
fn copy_string(p: &mut Parser) -> std::result::Result<String, ParserError> {
    let token = p.next_token();
    match token.token {
        Token::SingleQuotedString(s) | Token::EscapedStringLiteral(s) => Ok(s),
        Token::DollarQuotedString(s) => Ok(s.value),
        _ => p.expected("a string", token),
    }
}

/// An optional boolean option value: `true/false/on/off/1/0`, absent = true.
fn copy_boolean(p: &mut Parser) -> std::result::Result<bool, ParserError> {
    let token = p.peek_token();
    let value = match &token.token {
        Token::Word(w) => w.value.to_lowercase(),
        Token::Number(n, _) => n.clone(),
        Token::SingleQuotedString(s) => s.to_lowercase(),
        _ => return Ok(true),
    };
    let parsed = match value.as_str() {
        "true" | "on" | "1" => true,
        "false" | "off" | "0" => false,
        _ => return Ok(true),
    };
    let _ = p.next_token();
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_at_semicolons() {
        assert_eq!(parse_statements("SELECT 1; ;SELECT 2;").unwrap().len(), 2);
        assert!(parse_statements("").unwrap().is_empty());
        let e = parse_statements("SELECT 1 SELECT 2").unwrap_err();
        assert_eq!(e.sqlstate, sqlstate::SYNTAX_ERROR);
    }

    #[test]
    fn vacuum_in_postgresql_forms() {
        for sql in [
            "VACUUM",
            "VACUUM ANALYZE t",
            "VACUUM FULL FREEZE VERBOSE ANALYZE t (a, b)",
            "VACUUM (VERBOSE, ANALYZE) t; SELECT 1",
        ] {
            let parsed = parse_statements(sql).unwrap();
            assert!(matches!(parsed[0], Statement::Vacuum(_)), "{sql}");
        }
        let e = parse_statements("VACUUM a, b").unwrap_err();
        assert_eq!(e.sqlstate, sqlstate::FEATURE_NOT_SUPPORTED);
    }

    #[test]
    fn copy_options_old_and_new() {
        let options = |sql: &str| match parse_statements(sql).unwrap().remove(0) {
            Statement::Copy { options, .. } => options,
            other => panic!("{other}"),
        };
        assert_eq!(
            options("copy t from stdin with (freeze on)"),
            vec![CopyOption::Freeze(true)]
        );
        assert_eq!(
            options("COPY t (a, b) FROM STDIN WITH CSV HEADER DELIMITER AS ';'"),
            vec![
                CopyOption::Format(Ident::new("csv")),
                CopyOption::Header(true),
                CopyOption::Delimiter(';')
            ]
        );
        assert_eq!(
            options("COPY t FROM STDIN (FORMAT csv, HEADER false, NULL 'x')"),
            vec![
                CopyOption::Format(Ident::new("csv")),
                CopyOption::Header(false),
                CopyOption::Null("x".into())
            ]
        );
        let e = parse_statements("COPY t FROM '/etc/passwd'").unwrap_err();
        assert_eq!(e.sqlstate, sqlstate::FEATURE_NOT_SUPPORTED);
    }
}
