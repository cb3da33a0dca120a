//! Statement parsing: DataFusion's sqlparser with the PostgreSQL dialect.
//!
//! Parse errors become SQLSTATE 42601 with PostgreSQL-like text. Input is bounded by the
//! wire protocol's message limit; a statement nests at most as deep as sqlparser's
//! recursion limit allows (deeper input is a clean error, never a stack overflow).

use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use planner::error::sqlstate;
use planner::{Error, Result};

/// Parses a query string into statements (empty statements dropped).
pub fn parse_statements(sql: &str) -> Result<Vec<Statement>> {
    Parser::new(&PostgreSqlDialect {})
        .with_recursion_limit(200)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| {
            let message = match e {
                ParserError::RecursionLimitExceeded => {
                    return Error::new(
                        sqlstate::PROGRAM_LIMIT_EXCEEDED,
                        "statement is too deeply nested",
                    )
                }
                ParserError::ParserError(m) | ParserError::TokenizerError(m) => m,
            };
            Error::new(sqlstate::SYNTAX_ERROR, format!("syntax error: {message}"))
        })
}
