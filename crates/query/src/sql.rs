//! The read-only SQL surface: statements DataFusion may plan, the plan nodes a query may
//! contain, and what a plan reads (tables, columns, stated time bounds) — the policy's input.
//! Nothing here reads data: analysis plans against empty tables of the same schema.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::empty::EmptyTable;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator};
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::{QueryError, SqlPosition};

/// DDL, DML and statements (`SET`, transactions) are refused by DataFusion itself.
pub fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// A session with nothing registered and nothing that reaches outside: no
/// information_schema, no URL tables (neither is enabled unless asked for).
pub fn session(target_partitions: usize) -> SessionContext {
    let config = SessionConfig::new()
        .with_information_schema(false)
        // Spans let planning errors (unknown column, ambiguous name) say where they are.
        .set_bool("datafusion.sql_parser.collect_spans", true)
        .with_target_partitions(target_partitions.max(1));
    SessionContext::new_with_config(config)
}

/// What a query reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Analysis {
    /// Table → the top-level columns the query touches.
    pub tables: BTreeMap<String, BTreeSet<String>>,
    /// Bounds the query states on `occurred_at`, in µs since the epoch.
    pub from_us: Option<i64>,
    pub to_us: Option<i64>,
}

/// Plans `sql` against empty tables named `tables` (same schema as served) and reports
/// what it reads. Errors are the caller's: bad SQL, an unknown table or column, a refused
/// statement or plan node.
pub async fn analyze(
    sql: &str,
    tables: &[String],
    schema: &SchemaRef,
) -> Result<Analysis, QueryError> {
    let ctx = session(1);
    for t in tables {
        ctx.register_table(t.as_str(), Arc::new(EmptyTable::new(schema.clone())))
            .map_err(|e| QueryError::Internal(e.to_string()))?;
    }
    let df = ctx
        .sql_with_options(sql, read_only())
        .await
        .map_err(sql_error)?;
    let plan = df.logical_plan().clone();
    allow_listed(&plan)?;
    let mut analysis = Analysis::default();
    // Only the served tables: the other scans DataFusion plans (a recursive CTE's work table,
    // generate_series) read no sealed data.
    let served = |name: &str| tables.iter().any(|t| t == name);
    // Tables from the plan as written (the optimizer may drop a scan that returns nothing).
    scans(&plan, &mut |scan| {
        let name = scan.table_name.table();
        if served(name) {
            analysis.tables.entry(name.to_string()).or_default();
        }
    });
    // Columns and stated bounds from the optimized plan (projections pushed into scans).
    let optimized = ctx.state().optimize(&plan).map_err(sql_error)?;
    scans(&optimized, &mut |scan| {
        let name = scan.table_name.table();
        if !served(name) {
            return;
        }
        let columns = analysis.tables.entry(name.to_string()).or_default();
        for f in scan.projected_schema.fields() {
            columns.insert(f.name().clone());
        }
        for f in &scan.filters {
            bounds(f, &mut analysis);
        }
    });
    optimized
        .apply_with_subqueries(|node| {
            if let LogicalPlan::Filter(f) = node
                && let LogicalPlan::TableScan(scan) = f.input.as_ref()
                && served(scan.table_name.table())
            {
                bounds(&f.predicate, &mut analysis);
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .map_err(sql_error)?;
    Ok(analysis)
}

fn scans(plan: &LogicalPlan, f: &mut dyn FnMut(&datafusion::logical_expr::TableScan)) {
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            f(scan);
        }
        Ok(TreeNodeRecursion::Continue)
    });
}

/// Only the nodes of a read-only query, in the plan and in every subquery: no EXPLAIN (plain
/// or ANALYZE, which runs the query), no COPY, DDL, DML, SET, DESCRIBE or extension node.
pub fn allow_listed(plan: &LogicalPlan) -> Result<(), QueryError> {
    let mut refused = None;
    plan.apply_with_subqueries(|node| {
        let what = match node {
            LogicalPlan::Projection(_)
            | LogicalPlan::Filter(_)
            | LogicalPlan::Window(_)
            | LogicalPlan::Aggregate(_)
            | LogicalPlan::Sort(_)
            | LogicalPlan::Join(_)
            | LogicalPlan::Repartition(_)
            | LogicalPlan::Union(_)
            | LogicalPlan::TableScan(_)
            | LogicalPlan::EmptyRelation(_)
            | LogicalPlan::Subquery(_)
            | LogicalPlan::SubqueryAlias(_)
            | LogicalPlan::Limit(_)
            | LogicalPlan::Values(_)
            | LogicalPlan::Distinct(_)
            | LogicalPlan::Unnest(_)
            | LogicalPlan::RecursiveQuery(_) => return Ok(TreeNodeRecursion::Continue),
            LogicalPlan::Explain(_) => "EXPLAIN",
            LogicalPlan::Analyze(_) => "EXPLAIN ANALYZE",
            LogicalPlan::Copy(_) => "COPY",
            LogicalPlan::Dml(_) => "INSERT/UPDATE/DELETE",
            LogicalPlan::Ddl(_) => "CREATE/DROP",
            LogicalPlan::Statement(_) => "SET or a transaction statement",
            LogicalPlan::DescribeTable(_) => "DESCRIBE",
            LogicalPlan::Extension(_) => "an extension plan node",
        };
        refused = Some(what);
        Ok(TreeNodeRecursion::Stop)
    })
    .map_err(sql_error)?;
    match refused {
        Some(what) => Err(QueryError::NotAllowed(format!(
            "{what} is not allowed: the query service runs read-only SELECT queries"
        ))),
        None => Ok(()),
    }
}

/// `occurred_at <op> literal` conjuncts narrow the stated time range.
fn bounds(e: &Expr, a: &mut Analysis) {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
        return;
    };
    if *op == Operator::And {
        bounds(left, a);
        bounds(right, a);
        return;
    }
    let (op, lit) = match (column_name(left), column_name(right)) {
        (Some("occurred_at"), None) => (*op, micros(right)),
        (None, Some("occurred_at")) => (op.swap().unwrap_or(*op), micros(left)),
        _ => return,
    };
    let Some(v) = lit else { return };
    match op {
        Operator::Gt | Operator::GtEq => a.from_us = Some(a.from_us.map_or(v, |x| x.max(v))),
        Operator::Lt | Operator::LtEq => a.to_us = Some(a.to_us.map_or(v, |x| x.min(v))),
        Operator::Eq => {
            a.from_us = Some(a.from_us.map_or(v, |x| x.max(v)));
            a.to_us = Some(a.to_us.map_or(v, |x| x.min(v)));
        }
        _ => {}
    }
}

fn column_name(e: &Expr) -> Option<&str> {
    match e {
        Expr::Column(c) => Some(c.name.as_str()),
        Expr::Cast(c) => column_name(&c.expr),
        Expr::TryCast(c) => column_name(&c.expr),
        _ => None,
    }
}

fn micros(e: &Expr) -> Option<i64> {
    let Expr::Literal(v, _) = e else { return None };
    match v {
        ScalarValue::TimestampMicrosecond(Some(x), _) => Some(*x),
        ScalarValue::TimestampNanosecond(Some(x), _) => Some(x.div_euclid(1000)),
        ScalarValue::TimestampMillisecond(Some(x), _) => x.checked_mul(1000),
        ScalarValue::TimestampSecond(Some(x), _) => x.checked_mul(1_000_000),
        _ => None,
    }
}

/// DataFusion's planning errors are the caller's mistakes (400), with its message.
pub fn sql_error(e: DataFusionError) -> QueryError {
    match e {
        DataFusionError::ResourcesExhausted(m) => QueryError::MemoryLimit(m),
        DataFusionError::Context(_, inner) => sql_error(*inner),
        DataFusionError::Diagnostic(diag, inner) => {
            let located = diag.span.filter(|s| s.start.line > 0).map(|s| SqlPosition {
                line: s.start.line,
                column: s.start.column,
            });
            match sql_error(*inner) {
                QueryError::BadSql { message, position } => QueryError::BadSql {
                    message,
                    position: position.or(located),
                },
                other => other,
            }
        }
        DataFusionError::Plan(m) if m.contains("not supported") || m.contains("Unsupported") => {
            QueryError::NotAllowed(m)
        }
        DataFusionError::Execution(m) => QueryError::Execution(m),
        other => {
            let message = other.strip_backtrace().to_string();
            let position = position_in(&message);
            QueryError::BadSql { message, position }
        }
    }
}

/// sqlparser ends its errors with `at Line: N, Column: M`; the last such pair is the one.
fn position_in(message: &str) -> Option<SqlPosition> {
    let at = message.rfind("Line: ")?;
    let rest = &message[at + "Line: ".len()..];
    let (line, rest) = rest.split_once(", Column: ")?;
    let column: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    Some(SqlPosition {
        line: line.trim().parse().ok()?,
        column: column.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlparser_positions_are_read_from_the_message() {
        assert_eq!(
            position_in(
                "sql parser error: Expected: an SQL statement, found: SELEC at Line: 1, Column: 1"
            ),
            Some(SqlPosition { line: 1, column: 1 })
        );
        assert_eq!(
            position_in("Expected: end of statement, found: x at Line: 12, Column: 345"),
            Some(SqlPosition {
                line: 12,
                column: 345
            })
        );
        assert_eq!(position_in("Schema error: No field named nope."), None);
        assert_eq!(position_in("Line: x, Column: 2"), None);
    }
}
