//! Identifier folding and PostgreSQL's result column names.
//!
//! Unquoted identifiers fold to lower case; quoted ones keep their case (PostgreSQL rules).
//! Result columns are named as PostgreSQL names them — the alias, else the column or
//! function name, else `?column?` — computed from the statement's AST, because
//! DataFusion's names (`Int64(1)`, `count(*)`, `a + b`) are not what clients expect.

use datafusion::sql::sqlparser::ast::{
    CastKind, Expr, Ident, ObjectName, Query, SelectItem, SetExpr,
};

use crate::error::{sqlstate, Error, Result};

/// A folded identifier.
pub fn ident(i: &Ident) -> String {
    match i.quote_style {
        Some(_) => i.value.clone(),
        None => i.value.to_lowercase(),
    }
}

/// A relation name: `t` or `public.t` (other schemas do not exist).
pub fn object_name(name: &ObjectName) -> Result<String> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| {
            p.as_ident()
                .map(ident)
                .ok_or_else(|| Error::unsupported("computed object names"))
        })
        .collect::<Result<_>>()?;
    match parts.as_slice() {
        [table] => Ok(table.clone()),
        [schema, table] if schema == "public" => Ok(table.clone()),
        [db, schema, table] if db == "postgres" && schema == "public" => Ok(table.clone()),
        [schema, _] => Err(Error::new(
            sqlstate::UNDEFINED_TABLE,
            format!("schema \"{schema}\" does not exist"),
        )),
        _ => Err(Error::new(
            sqlstate::SYNTAX_ERROR,
            format!("improper qualified name (too many dotted names): {name}"),
        )),
    }
}

/// PostgreSQL's name for an unaliased expression.
pub fn expr_name(e: &Expr) -> String {
    match e {
        Expr::Identifier(i) => ident(i),
        Expr::CompoundIdentifier(parts) => parts.last().map(ident).unwrap_or_default(),
        Expr::Function(f) => f
            .name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(ident)
            .unwrap_or_else(|| "?column?".into()),
        Expr::Cast {
            kind: CastKind::DoubleColon | CastKind::Cast,
            expr,
            data_type,
            ..
        } => match expr_name(expr).as_str() {
            "?column?" => type_name(&data_type.to_string()),
            name => name.to_string(),
        },
        Expr::Nested(inner) => expr_name(inner),
        Expr::Case { .. } => "case".into(),
        Expr::Exists { .. } => "exists".into(),
        Expr::Subquery(q) => match output_names(q) {
            Some(names) if names.len() == 1 => {
                names[0].clone().unwrap_or_else(|| "?column?".into())
            }
            _ => "?column?".into(),
        },
        Expr::Array(_) => "array".into(),
        Expr::TypedString(t) => type_name(&t.data_type.to_string()),
        Expr::Extract { .. } => "extract".into(),
        Expr::Substring { .. } => "substring".into(),
        Expr::Trim { .. } => "btrim".into(),
        Expr::Position { .. } => "position".into(),
        Expr::Overlay { .. } => "overlay".into(),
        Expr::Ceil { .. } => "ceil".into(),
        Expr::Floor { .. } => "floor".into(),
        _ => "?column?".into(),
    }
}

/// The column name PostgreSQL gives a cast to this type.
fn type_name(t: &str) -> String {
    let lower = t.to_lowercase();
    let base = lower.split('(').next().unwrap_or("").trim().to_string();
    match base.as_str() {
        "int" | "integer" | "int4" => "int4".into(),
        "bigint" | "int8" => "int8".into(),
        "smallint" | "int2" => "int2".into(),
        "real" | "float4" => "float4".into(),
        "double precision" | "float8" | "float" => "float8".into(),
        "boolean" | "bool" => "bool".into(),
        "varchar" | "character varying" => "varchar".into(),
        "char" | "character" => "bpchar".into(),
        "decimal" => "numeric".into(),
        "timestamp with time zone" => "timestamptz".into(),
        "timestamp without time zone" => "timestamp".into(),
        "time without time zone" => "time".into(),
        _ => base,
    }
}

/// Names of the projection of a query's top-level SELECT: Some(name) per item, None for a
/// wildcard (expanded by the caller from the planned schema). None if not a plain SELECT.
pub fn output_names(q: &Query) -> Option<Vec<Option<String>>> {
    let mut body = q.body.as_ref();
    loop {
        match body {
            SetExpr::Select(select) => {
                return Some(
                    select
                        .projection
                        .iter()
                        .map(|item| match item {
                            SelectItem::UnnamedExpr(e) => Some(expr_name(e)),
                            SelectItem::ExprWithAlias { alias, .. } => Some(ident(alias)),
                            _ => None,
                        })
                        .collect(),
                )
            }
            SetExpr::Query(inner) => body = inner.body.as_ref(),
            SetExpr::SetOperation { left, .. } => body = left.as_ref(),
            _ => return None,
        }
    }
}

/// Resolves final column names: AST names where known, DataFusion's for wildcards.
pub fn resolve_names(ast: Option<Vec<Option<String>>>, planned: &[String]) -> Vec<String> {
    let Some(ast) = ast else {
        return planned.to_vec();
    };
    let named = ast.iter().filter(|n| n.is_some()).count();
    let wildcards = ast.len() - named;
    if wildcards == 0 {
        if ast.len() != planned.len() {
            return planned.to_vec();
        }
        return ast.into_iter().map(|n| n.expect("no wildcards")).collect();
    }
    // Each wildcard expands to some columns; only one wildcard can be resolved exactly.
    if wildcards > 1 || planned.len() < named {
        return planned.to_vec();
    }
    let expansion = planned.len() - named;
    let mut out = Vec::with_capacity(planned.len());
    let mut i = 0;
    for n in ast {
        match n {
            Some(name) => {
                out.push(name);
                i += 1;
            }
            None => {
                out.extend(planned[i..i + expansion].iter().cloned());
                i += expansion;
            }
        }
    }
    out
}
