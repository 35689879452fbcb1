//! Every statement the Postgres store issues can be routed to one node of
//! a Postgres distributed by `book` (Citus: every book table distributed
//! on `book`, colocated; `docs/scaling.md`), issue 23 item 2.
//!
//! The rule, checked on the parsed statement (`sqlparser`): in every
//! `SELECT` (the statement's own, each CTE's, each subquery's, each
//! lateral join's), every book table it reads has `<table>.book = <param>`
//! among the conjuncts of its `WHERE` or of a join's `ON`; an `UPDATE` or
//! `DELETE` has it in its `WHERE`; an `INSERT` takes `book` from a
//! parameter. A join on `x.book = y.book` alone is not enough: a
//! distributed planner may not carry the equality through a CTE or a
//! lateral subquery (Citus refused the `as_of` reads written that way).
//!
//! The statements come from `talea_store_pg::statements::all()`;
//! `every_statement_literal_is_registered` scans the sources so that a new
//! statement cannot bypass that list. A statement that is multi-book by
//! design is listed in [`MULTI_BOOK`] with its reason; the list is checked
//! both ways (an entry that would pass, or names no statement, fails).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use sqlparser::ast::{
    BinaryOperator, CastKind, Expr, FromTable, Ident, JoinConstraint, JoinOperator, ObjectName,
    Query, SetExpr, Statement, TableFactor, TableObject, TableWithJoins, Value, Visit, Visitor,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// Tables with a `book` column: each is distributed by it (`distribution.rs`
/// checks this list against the live catalog).
pub const BOOK_TABLES: &[&str] = &[
    "accounts",
    "balances",
    "books",
    "checkpoints",
    "events",
    "hold_postings",
    "holds",
    "liability_snapshots",
    "postings",
    "relay_positions",
    "transaction_metadata",
    "transactions",
];

/// Statements that touch many books by design, and why. On Citus each is a
/// multi-shard statement planned by the coordinator (`docs/scaling.md`,
/// "What is not routed to one node").
const MULTI_BOOK: &[(&str, &str)] = &[
    ("read::BOOKS", "lists every book"),
    (
        "chain::BEHIND",
        "start-up sweep: books whose hash chain is behind",
    ),
    (
        "write::DUE_HOLDS",
        "the expirer's sweep: due holds of every book",
    ),
    (
        "relay::RELAY_BACKLOG",
        "the relay's sweep: books ahead of it",
    ),
    (
        "relay::RECORD_PUBLISHED",
        "the relay's positions of several books, one statement",
    ),
    (
        "transaction",
        "a transaction by id in any book (GET /v1/transactions/{id})",
    ),
    ("young::ANALYZE", "statistics of whole tables, not a query"),
    (
        "dialect::LOCK_BOOKS",
        "a commit's counter rows: every book of the commit",
    ),
    ("dialect::CREATE_BOOKS", "a commit's new books"),
    (
        "dialect::ADVANCE_BOOKS",
        "a commit's counters: every book of the commit",
    ),
    (
        "dialect::WRITE_BATCH",
        "a commit's rows: every book of the commit",
    ),
    (
        "dialect::WRITE_DRAFTS",
        "a commit's rows: every book of the commit",
    ),
    (
        "dialect::WITH_HOLDS.drafts",
        "a commit's rows: every book of the commit",
    ),
    (
        "dialect::WITH_HOLDS.batch",
        "a commit's rows: every book of the commit",
    ),
    (
        "transactions_by_keys",
        "a commit's keys: every book of the commit",
    ),
    (
        "batch_accounts",
        "a commit's accounts: every book of the commit",
    ),
    (
        "keys_and_holds",
        "a commit's keys and holds: every book of the commit",
    ),
    (
        "accounts_and_held",
        "a commit's accounts: every book of the commit",
    ),
];

/// Statements that read no book table (only the catalog, or nothing):
/// nothing to route.
const NO_TABLE: &[&str] = &[
    "relay::LEASE",
    "relay::PROBE",
    "codec::SESSION_SETUP",
    "lib::PING",
    "lib::MIGRATIONS",
    "citus::EXTENSION",
    "citus::WORKERS",
    "citus::TABLES",
    "citus::FOREIGN_KEYS",
    "citus::REFERENCE",
    "citus::DISTRIBUTE_ANCHOR",
    "citus::DISTRIBUTE",
];

#[test]
fn every_statement_is_routable_to_one_book() {
    let mut failures = Vec::new();
    let mut multi: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, sql) in talea_store_pg::statements::all() {
        let problems = match check(sql) {
            Ok(problems) => problems,
            Err(error) => vec![format!("does not parse: {error}")],
        };
        if MULTI_BOOK.iter().any(|(n, _)| *n == name) {
            multi.insert(name, problems);
        } else if !problems.is_empty() {
            failures.push(format!("{name}:\n    {}\n  {sql}", problems.join("\n    ")));
        }
    }
    assert!(
        failures.is_empty(),
        "statements a distributed Postgres cannot route to one book (pin `book` to a \
         parameter on every book table of every SELECT, CTE and subquery, or list the \
         statement in MULTI_BOOK with its reason and in docs/scaling.md):\n{}",
        failures.join("\n")
    );
    for (name, reason) in MULTI_BOOK {
        let problems = multi
            .get(name)
            .unwrap_or_else(|| panic!("MULTI_BOOK names {name}, which is no statement"));
        assert!(
            !problems.is_empty() || *name == "young::ANALYZE",
            "{name} ({reason}) is routable after all: take it off MULTI_BOOK"
        );
    }
}

#[test]
fn the_rule_catches_what_citus_refused() {
    // The shape of the old `as_of` reads: the lateral subquery is tied to
    // the outer table by `book = b.book`, not pinned to the parameter.
    let lateral = "WITH cut AS (SELECT seq FROM events WHERE book = $1 LIMIT 1) \
        SELECT b.asset FROM cut, balances b CROSS JOIN LATERAL ( \
          SELECT balance_after FROM postings WHERE book = b.book AND seq <= cut.seq LIMIT 1) p \
        WHERE b.book = $1";
    let problems = check(lateral).expect("parses");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("postings"), "{problems:?}");
    // A join on book = book alone pins only the table the WHERE pins.
    let join = "SELECT 1 FROM holds h JOIN hold_postings hp ON hp.book = h.book \
        WHERE h.book = $1";
    assert_eq!(check(join).expect("parses").len(), 1);
    assert!(
        check("SELECT 1 FROM holds h JOIN hold_postings hp ON hp.book = $1 AND hp.seq = h.seq WHERE h.book = $1")
            .expect("parses")
            .is_empty()
    );
    assert_eq!(
        check("UPDATE holds SET status = $2 WHERE seq = $1")
            .expect("parses")
            .len(),
        1
    );
    assert_eq!(
        check("INSERT INTO events (book, seq) SELECT u.book, u.seq FROM unnest($1::text[], $2::bigint[]) AS u (book, seq)")
            .expect("parses")
            .len(),
        1
    );
    assert!(
        check("INSERT INTO events (book, seq) VALUES ($1, $2)")
            .expect("parses")
            .is_empty()
    );
    assert_eq!(
        check("SELECT 1 FROM accounts WHERE EXISTS (SELECT 1 FROM balances WHERE account = $2) AND book = $1")
            .expect("parses")
            .len(),
        1
    );
}

#[test]
fn statements_without_book_tables_name_none() {
    for (name, sql) in talea_store_pg::statements::all() {
        if NO_TABLE.contains(&name) {
            let mut tables = Tables::default();
            for statement in parse(sql).expect("parses") {
                let _ = statement.visit(&mut tables);
            }
            assert!(
                tables.0.iter().all(|t| !BOOK_TABLES.contains(&t.as_str())),
                "{name} reads {:?}",
                tables.0
            );
        }
    }
}

/// Every table name a statement mentions.
#[derive(Default)]
struct Tables(BTreeSet<String>);

impl Visitor for Tables {
    type Break = ();

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        self.0.insert(relation.to_string());
        ControlFlow::Continue(())
    }
}

fn parse(sql: &str) -> Result<Vec<Statement>, String> {
    Parser::parse_sql(&PostgreSqlDialect {}, sql).map_err(|e| e.to_string())
}

/// What keeps `sql` from being routed to one book; empty when nothing.
fn check(sql: &str) -> Result<Vec<String>, String> {
    let statements = parse(sql)?;
    let mut rule = Rule::default();
    for statement in &statements {
        let _ = statement.visit(&mut rule);
    }
    Ok(rule.problems)
}

#[derive(Default)]
struct Rule {
    problems: Vec<String>,
}

impl Visitor for Rule {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        let ctes: BTreeSet<String> = query
            .with
            .iter()
            .flat_map(|with| &with.cte_tables)
            .map(|cte| cte.alias.name.value.to_lowercase())
            .collect();
        self.set_expr(&query.body, &ctes);
        ControlFlow::Continue(())
    }

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<()> {
        match statement {
            Statement::Update {
                table,
                from,
                selection,
                ..
            } => {
                let mut scope = Scope::default();
                scope.add_with_joins(table, &BTreeSet::new());
                if from.is_some() {
                    self.problems
                        .push("UPDATE … FROM: rows of several books".to_owned());
                }
                scope.conjuncts(selection.as_ref());
                self.problems.extend(scope.unpinned("UPDATE"));
            }
            Statement::Delete(delete) => {
                let mut scope = Scope::default();
                let tables = match &delete.from {
                    FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
                };
                for table in tables {
                    scope.add_with_joins(table, &BTreeSet::new());
                }
                scope.conjuncts(delete.selection.as_ref());
                self.problems.extend(scope.unpinned("DELETE"));
            }
            Statement::Insert(insert) => {
                let TableObject::TableName(name) = &insert.table else {
                    return ControlFlow::Continue(());
                };
                let table = last_ident(name);
                if !BOOK_TABLES.contains(&table.as_str()) {
                    return ControlFlow::Continue(());
                }
                let Some(at) = insert
                    .columns
                    .iter()
                    .position(|c| c.value.eq_ignore_ascii_case("book"))
                else {
                    self.problems
                        .push(format!("INSERT INTO {table} names no book column"));
                    return ControlFlow::Continue(());
                };
                let pinned = insert.source.as_ref().is_some_and(|source| {
                    inserted_values(&source.body)
                        .iter()
                        .all(|row| row.get(at).is_some_and(|e| is_parameter(e)))
                });
                if !pinned {
                    self.problems.push(format!(
                        "INSERT INTO {table}: book is not taken from a parameter"
                    ));
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// The rows an INSERT's source produces: each VALUES row, or the projection
/// of each SELECT of a union (a row with an unknown shape is empty, which
/// fails the check).
fn inserted_values(body: &SetExpr) -> Vec<Vec<&Expr>> {
    match body {
        SetExpr::Values(values) => values.rows.iter().map(|r| r.iter().collect()).collect(),
        SetExpr::Select(select) => vec![
            select
                .projection
                .iter()
                .map(|item| match item {
                    sqlparser::ast::SelectItem::UnnamedExpr(e)
                    | sqlparser::ast::SelectItem::ExprWithAlias { expr: e, .. } => Some(e),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .unwrap_or_default(),
        ],
        SetExpr::SetOperation { left, right, .. } => {
            let mut rows = inserted_values(left);
            rows.extend(inserted_values(right));
            rows
        }
        SetExpr::Query(query) => inserted_values(&query.body),
        _ => vec![Vec::new()],
    }
}

impl Rule {
    fn set_expr(&mut self, body: &SetExpr, ctes: &BTreeSet<String>) {
        match body {
            SetExpr::Select(select) => {
                let mut scope = Scope::default();
                for table in &select.from {
                    scope.add_with_joins(table, ctes);
                }
                scope.conjuncts(select.selection.as_ref());
                self.problems.extend(scope.unpinned("SELECT"));
            }
            SetExpr::SetOperation { left, right, .. } => {
                self.set_expr(left, ctes);
                self.set_expr(right, ctes);
            }
            // Nested queries are visited as queries; VALUES reads no table;
            // data-modifying CTEs are visited as statements.
            _ => {}
        }
    }
}

/// The book tables one SELECT (or UPDATE, DELETE) reads, by the name its
/// columns are qualified with, and the equalities that pin them.
#[derive(Default)]
struct Scope {
    /// qualifier → table
    tables: BTreeMap<String, String>,
    /// qualifiers pinned by `q.book = <param>` (`""`: unqualified `book`)
    pinned: BTreeSet<String>,
}

impl Scope {
    fn add_with_joins(&mut self, table: &TableWithJoins, ctes: &BTreeSet<String>) {
        self.add_factor(&table.relation, ctes);
        for join in &table.joins {
            self.add_factor(&join.relation, ctes);
            let constraint = match &join.join_operator {
                JoinOperator::Join(c)
                | JoinOperator::Inner(c)
                | JoinOperator::Left(c)
                | JoinOperator::LeftOuter(c)
                | JoinOperator::Right(c)
                | JoinOperator::RightOuter(c)
                | JoinOperator::FullOuter(c)
                | JoinOperator::CrossJoin(c) => Some(c),
                _ => None,
            };
            if let Some(JoinConstraint::On(on)) = constraint {
                self.conjuncts(Some(on));
            }
        }
    }

    fn add_factor(&mut self, factor: &TableFactor, ctes: &BTreeSet<String>) {
        match factor {
            TableFactor::Table {
                name, alias, args, ..
            } if args.is_none() => {
                let table = last_ident(name);
                if ctes.contains(&table) || !BOOK_TABLES.contains(&table.as_str()) {
                    return;
                }
                let qualifier = alias
                    .as_ref()
                    .map_or_else(|| table.clone(), |a| a.name.value.to_lowercase());
                self.tables.insert(qualifier, table);
            }
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => self.add_with_joins(table_with_joins, ctes),
            // Derived tables (lateral or not) are queries of their own.
            _ => {}
        }
    }

    fn conjuncts(&mut self, expr: Option<&Expr>) {
        let Some(expr) = expr else { return };
        match expr {
            Expr::BinaryOp {
                left,
                op: BinaryOperator::And,
                right,
            } => {
                self.conjuncts(Some(left));
                self.conjuncts(Some(right));
            }
            Expr::Nested(inner) => self.conjuncts(Some(inner)),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } => {
                for (column, value) in [(left, right), (right, left)] {
                    if let Some(qualifier) = book_column(column)
                        && is_parameter(value)
                    {
                        self.pinned.insert(qualifier);
                    }
                }
            }
            _ => {}
        }
    }

    fn unpinned(&self, what: &str) -> Vec<String> {
        let unqualified = self.pinned.contains("") && self.tables.len() == 1;
        self.tables
            .iter()
            .filter(|(qualifier, _)| !unqualified && !self.pinned.contains(*qualifier))
            .map(|(qualifier, table)| {
                format!("{what} reads {table} ({qualifier}) without {qualifier}.book = <parameter>")
            })
            .collect()
    }
}

/// `q.book` → `Some("q")`, `book` → `Some("")`.
fn book_column(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(ident) if is_book(ident) => Some(String::new()),
        Expr::CompoundIdentifier(parts) if parts.len() == 2 && is_book(&parts[1]) => {
            Some(parts[0].value.to_lowercase())
        }
        Expr::Nested(inner) => book_column(inner),
        _ => None,
    }
}

fn is_book(ident: &Ident) -> bool {
    ident.value.eq_ignore_ascii_case("book")
}

/// A statement parameter (`$n`), a string constant, or either cast.
fn is_parameter(expr: &Expr) -> bool {
    match expr {
        Expr::Value(value) => matches!(
            value.value,
            Value::Placeholder(_) | Value::SingleQuotedString(_)
        ),
        Expr::Cast {
            kind: CastKind::DoubleColon | CastKind::Cast,
            expr,
            ..
        } => is_parameter(expr),
        Expr::Nested(inner) => is_parameter(inner),
        _ => false,
    }
}

fn last_ident(name: &ObjectName) -> String {
    name.0
        .last()
        .and_then(|part| part.as_ident())
        .map_or_else(String::new, |ident| ident.value.to_lowercase())
}

/// Every string literal of the SQL crates' sources that starts a statement
/// (outside `#[cfg(test)]` items) is part of a registered statement.
#[test]
fn every_statement_literal_is_registered() {
    let registered: Vec<String> = talea_store_pg::statements::all()
        .iter()
        .map(|(_, sql)| squash(sql))
        .collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in ["talea-store-sql/src", "talea-store-pg/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 10, "{files:?}");
    let mut missing = Vec::new();
    let mut seen = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("reads a source file");
        let tokens: TokenStream = text.parse().expect("a source file tokenizes");
        let mut literals = Vec::new();
        string_literals(tokens, &mut literals);
        for literal in literals {
            let sql = squash(&literal);
            let starts = [
                "SELECT ", "INSERT ", "UPDATE ", "DELETE ", "WITH ", "ANALYZE ",
            ]
            .iter()
            .any(|k| sql.starts_with(k));
            if !starts {
                continue;
            }
            seen += 1;
            if !registered.iter().any(|r| r.contains(&sql)) {
                missing.push(format!("{}: {sql}", file.display()));
            }
        }
    }
    assert!(seen > 40, "only {seen} statement literals found");
    assert!(
        missing.is_empty(),
        "statements missing from talea_store_pg::statements::all() (or \
         talea_store_sql::statements::core()):\n{}",
        missing.join("\n")
    );
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("reads a source directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The string literals of `tokens`, macro bodies included, skipping items
/// under `#[cfg(test)]`.
fn string_literals(tokens: TokenStream, out: &mut Vec<String>) {
    let mut skip_item = false;
    let mut trees = tokens.into_iter().peekable();
    while let Some(tree) = trees.next() {
        match tree {
            TokenTree::Punct(p) if p.as_char() == '#' => {
                if let Some(TokenTree::Group(attr)) = trees.peek()
                    && attr.delimiter() == Delimiter::Bracket
                    && attr.stream().to_string().replace(' ', "") == "cfg(test)"
                {
                    skip_item = true;
                }
            }
            TokenTree::Group(group) => {
                if skip_item && group.delimiter() == Delimiter::Brace {
                    skip_item = false;
                } else if group.delimiter() != Delimiter::Bracket || !skip_item {
                    string_literals(group.stream(), out);
                }
            }
            TokenTree::Punct(p) if p.as_char() == ';' => skip_item = false,
            TokenTree::Literal(literal) => {
                if let syn::Lit::Str(s) = syn::Lit::new(literal) {
                    out.push(s.value());
                }
            }
            _ => {}
        }
    }
}

/// Whitespace runs as one space, trimmed.
fn squash(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}
