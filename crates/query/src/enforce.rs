//! A decision compiled into the plan: each granted table becomes a view — scan, then the
//! policy's row filters, then its masks — registered under the table's own name in a session
//! made for this one request. The user's SQL is planned over these views only, so everything
//! it does (WHERE, JOIN, GROUP BY, aggregates, windows, subqueries) sees filtered rows and
//! masked values, never raw ones (view semantics). Policy values become literals, never SQL.

use std::sync::Arc;

use cairn_policy::{Filter, Mask, MaskKind, Op, TableGrant};
use datafusion::arrow::datatypes::{DataType, Field, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::datasource::MemTable;
use datafusion::functions::core::expr_fn::{get_field, named_struct};
use datafusion::functions::crypto::expr_fn::sha256;
use datafusion::functions::encoding::expr_fn::encode;
use datafusion::logical_expr::{Expr, lit, when};
use datafusion::prelude::{SessionContext, coalesce, col};

use crate::QueryError;
use crate::catalog::Segment;

/// Registers `name` in `ctx` as the policy's view of `segments`.
///
/// The row filters are applied by a plan of their own, executed to completion before the
/// caller's SQL is planned: in one plan the optimizer may merge the caller's predicates with
/// the policy's and evaluate them on rows the policy removes, and a predicate that fails (a
/// cast, a division by zero) would then reveal those rows through its error message or the
/// mere fact of failing. Masks stay in the view: a predicate over a masked column is
/// rewritten onto the masked expression, so it never sees the raw value.
pub async fn register_view(
    ctx: &SessionContext,
    name: &str,
    schema: &SchemaRef,
    segments: &[Arc<Segment>],
    grant: &TableGrant,
) -> Result<(), QueryError> {
    let n = ctx.copied_config().target_partitions();
    let mut partitions = partition(segments, n);
    if !grant.row_filters.is_empty() {
        let table = MemTable::try_new(schema.clone(), partitions)
            .map_err(|e| QueryError::Internal(e.to_string()))?;
        let mut rows = ctx
            .read_table(Arc::new(table))
            .map_err(|e| QueryError::Internal(e.to_string()))?;
        for f in &grant.row_filters {
            rows = rows.filter(filter_expr(f, schema)?).map_err(policy_error)?;
        }
        let kept = rows
            .collect_partitioned()
            .await
            .map_err(crate::sql::sql_error)?;
        partitions = if kept.is_empty() {
            vec![Vec::new()]
        } else {
            kept
        };
    }
    let table = MemTable::try_new(schema.clone(), partitions)
        .map_err(|e| QueryError::Internal(e.to_string()))?;
    let mut df = ctx
        .read_table(Arc::new(table))
        .map_err(|e| QueryError::Internal(e.to_string()))?;
    let projection = schema
        .fields()
        .iter()
        .map(|field| masked_column(field, grant, schema))
        .collect::<Result<Vec<_>, _>>()?;
    df = df.select(projection).map_err(policy_error)?;
    ctx.register_table(name, df.into_view())
        .map_err(|e| QueryError::Internal(e.to_string()))?;
    Ok(())
}

fn partition(
    segments: &[Arc<Segment>],
    n: usize,
) -> Vec<Vec<datafusion::arrow::array::RecordBatch>> {
    let n = n.max(1);
    let mut parts = vec![Vec::new(); n];
    for (i, s) in segments.iter().enumerate() {
        parts[i % n].extend(s.batches.iter().cloned());
    }
    parts
}

/// A policy that names a column the table does not have, or a value of the wrong type, is
/// a broken policy: the query is denied, not run unfiltered.
fn policy_error(e: impl std::fmt::Display) -> QueryError {
    QueryError::PolicyInvalid(e.to_string())
}

/// `column` or `parent.child`, and its type.
fn column(path: &str, schema: &SchemaRef) -> Result<(Expr, DataType), QueryError> {
    let mut parts = path.splitn(2, '.');
    let top = parts.next().unwrap_or_default();
    let field = schema.field_with_name(top).map_err(|_| {
        policy_error(format!(
            "the policy names column `{path}`, which the table does not have"
        ))
    })?;
    match parts.next() {
        None => Ok((col(format!("\"{top}\"")), field.data_type().clone())),
        Some(child) => match field.data_type() {
            DataType::Struct(fields) => {
                let f = fields.iter().find(|f| f.name() == child).ok_or_else(|| {
                    policy_error(format!(
                        "the policy names column `{path}`, which the table does not have"
                    ))
                })?;
                Ok((
                    get_field(col(format!("\"{top}\"")), child),
                    f.data_type().clone(),
                ))
            }
            _ => Err(policy_error(format!(
                "the policy names `{path}`, but `{top}` has no fields"
            ))),
        },
    }
}

/// A policy value as a literal of the column's type.
fn value(v: &serde_json::Value, ty: &DataType, path: &str) -> Result<Expr, QueryError> {
    let scalar = match (ty, v) {
        (
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View,
            serde_json::Value::String(s),
        ) => ScalarValue::Utf8(Some(s.clone())),
        (DataType::Timestamp(_, tz), serde_json::Value::Number(n)) if n.is_i64() => {
            ScalarValue::TimestampMicrosecond(n.as_i64(), tz.clone())
        }
        (DataType::Int32, serde_json::Value::Number(n))
            if n.as_i64().is_some_and(|x| i32::try_from(x).is_ok()) =>
        {
            ScalarValue::Int32(n.as_i64().map(|x| x as i32))
        }
        (DataType::Int64, serde_json::Value::Number(n)) if n.is_i64() => {
            ScalarValue::Int64(n.as_i64())
        }
        (DataType::Boolean, serde_json::Value::Bool(b)) => ScalarValue::Boolean(Some(*b)),
        _ => {
            return Err(policy_error(format!(
                "the policy compares `{path}` ({ty}) with {v}, a value of another type"
            )));
        }
    };
    Ok(lit(scalar))
}

/// A row filter as an expression. NULL never satisfies a filter (SQL comparison semantics:
/// the row is dropped).
pub fn filter_expr(f: &Filter, schema: &SchemaRef) -> Result<Expr, QueryError> {
    let (c, ty) = column(&f.column, schema)?;
    let values = f
        .values
        .iter()
        .map(|v| value(v, &ty, &f.column))
        .collect::<Result<Vec<_>, _>>()?;
    let one = || {
        values
            .first()
            .cloned()
            .ok_or_else(|| policy_error(format!("the filter on `{}` has no value", f.column)))
    };
    Ok(match f.op {
        Op::Eq => c.eq(one()?),
        Op::Ne => c.not_eq(one()?),
        Op::Lt => c.lt(one()?),
        Op::Lte => c.lt_eq(one()?),
        Op::Gt => c.gt(one()?),
        Op::Gte => c.gt_eq(one()?),
        Op::In => c.in_list(values, false),
        Op::NotIn => c.in_list(values, true),
    })
}

/// The column as the caller sees it: raw, or masked (wholly, or its masked children rebuilt
/// into the struct).
fn masked_column(
    field: &Arc<Field>,
    grant: &TableGrant,
    schema: &SchemaRef,
) -> Result<Expr, QueryError> {
    let name = field.name();
    let raw = col(format!("\"{name}\""));
    if let Some(mask) = grant.masks.get(name) {
        return Ok(apply(mask, raw, field.data_type(), name, schema)?.alias(name));
    }
    let prefix = format!("{name}.");
    if !grant.masks.keys().any(|k| k.starts_with(&prefix)) {
        return Ok(raw);
    }
    let DataType::Struct(children) = field.data_type() else {
        return Err(policy_error(format!(
            "the policy masks a field of `{name}`, which has no fields"
        )));
    };
    let mut args = Vec::new();
    for child in children {
        let path = format!("{name}.{}", child.name());
        let value = get_field(raw.clone(), child.name());
        let value = match grant.masks.get(&path) {
            Some(mask) => apply(mask, value, child.data_type(), &path, schema)?,
            None => value,
        };
        args.push(lit(child.name().as_str()));
        args.push(value);
    }
    if let Some(unknown) = grant
        .masks
        .keys()
        .filter(|k| k.starts_with(&prefix))
        .find(|k| {
            !children
                .iter()
                .any(|c| format!("{name}.{}", c.name()) == **k)
        })
    {
        return Err(policy_error(format!(
            "the policy masks `{unknown}`, which the table does not have"
        )));
    }
    Ok(named_struct(args).alias(name))
}

fn apply(
    mask: &Mask,
    value: Expr,
    ty: &DataType,
    path: &str,
    schema: &SchemaRef,
) -> Result<Expr, QueryError> {
    let masked = match mask.kind {
        MaskKind::Null => lit(ScalarValue::try_from(ty).map_err(policy_error)?),
        MaskKind::Replace => {
            let v = mask.value.as_ref().ok_or_else(|| {
                policy_error(format!("the replace mask of `{path}` has no value"))
            })?;
            self::value(v, ty, path)?
        }
        MaskKind::Hash => {
            if !matches!(
                ty,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ) {
                return Err(policy_error(format!(
                    "`{path}` ({ty}) cannot be hashed: hash masks apply to text columns"
                )));
            }
            encode(sha256(value.clone()), lit("hex"))
        }
    };
    Ok(match &mask.when {
        None => masked,
        // A row whose condition is NULL is masked too: only a definite "no" shows the value.
        Some(cond) => when(
            coalesce(vec![filter_expr(cond, schema)?, lit(true)]),
            masked,
        )
        .otherwise(value)
        .map_err(policy_error)?,
    })
}
