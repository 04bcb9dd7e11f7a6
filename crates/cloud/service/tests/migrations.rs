//! Migrations are safe for a rolling upgrade (docs/service/scale-out.md, "Rolling upgrades"),
//! checked over `migrations/` in the manner of a tidy test.
//!
//! During a rolling upgrade the first new replica applies the new release's migrations while
//! replicas of the previous release still serve from the same database. So a migration may only
//! **expand** the schema: new tables, new columns that are nullable or have a default, new
//! indexes, data changes. Statements that would break the previous release's SQL (dropping or
//! renaming a table or column, changing a column, a new constraint, a `NOT NULL` column without
//! a default) are **contract** steps: they ship in a later release than the one that stopped
//! using what they remove, and the migration says so on a line of its own,
//! `-- contract: <what no longer uses it, since which release>`. A migration that contracts
//! without that line fails this test. Migrations written before the rule are listed in
//! [`BEFORE_THE_RULE`] (a migration is never edited: sqlx refuses a changed checksum).

use std::path::PathBuf;

/// Migrations older than the rule that contract without saying so (never add to this list).
const BEFORE_THE_RULE: &[&str] = &["0009_stateless_nonces.sql"];

/// The marker a contract migration carries.
const CONTRACT_MARKER: &str = "-- contract:";

/// What in one statement (upper-cased, whitespace collapsed) breaks the previous release, if
/// anything.
fn contracts(statement: &str) -> Option<&'static str> {
    let s = statement;
    let alter = s.starts_with("ALTER TABLE");
    if s.starts_with("DROP TABLE") {
        Some("drops a table")
    } else if alter && s.contains(" DROP ") {
        Some("drops a column or constraint")
    } else if s.contains(" RENAME ") {
        Some("renames a table or column")
    } else if alter && s.contains(" ALTER COLUMN ") {
        Some("changes a column")
    } else if alter && s.contains(" ADD CONSTRAINT ") {
        Some("adds a constraint the previous release may break")
    } else if alter
        && s.contains(" ADD COLUMN ")
        && s.contains(" NOT NULL")
        && !s.contains(" DEFAULT ")
    {
        Some("adds a NOT NULL column without a default (the previous release's inserts fail)")
    } else {
        None
    }
}

/// Every statement of a migration's text that contracts the schema, as `what: statement`.
fn contracting(text: &str) -> Vec<String> {
    let code: String = text
        .lines()
        .map(|l| l.split("--").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join(" ");
    code.split(';')
        .map(|s| {
            s.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_uppercase()
        })
        .filter(|s| !s.is_empty())
        .filter_map(|s| contracts(&s).map(|why| format!("{why}: {s}")))
        .collect()
}

/// Why a migration file breaks the rule, if it does.
fn violations(name: &str, text: &str) -> Vec<String> {
    if BEFORE_THE_RULE.contains(&name)
        || text.lines().any(|l| l.trim().starts_with(CONTRACT_MARKER))
    {
        return Vec::new();
    }
    contracting(text)
        .into_iter()
        .map(|v| {
            format!(
                "{name}: {v} (contract steps ship a release after the code stops using what \
                 they remove, with a `{CONTRACT_MARKER} ...` line)"
            )
        })
        .collect()
}

#[test]
fn every_migration_only_expands_the_schema_or_says_it_contracts() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut found = Vec::new();
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("sql") {
            continue;
        }
        seen += 1;
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        found.extend(violations(&name, &std::fs::read_to_string(&path).unwrap()));
    }
    assert!(
        seen >= 16,
        "only {seen} migrations found in {}",
        dir.display()
    );
    assert!(found.is_empty(), "{}", found.join("\n"));
    // The grandfathered one is still a contract step: the list is not hiding nothing.
    let old = std::fs::read_to_string(dir.join(BEFORE_THE_RULE[0])).unwrap();
    assert!(!contracting(&old).is_empty());
}

#[test]
fn contracting_statements_are_found_and_expanding_ones_pass() {
    for bad in [
        "DROP TABLE devices;",
        "ALTER TABLE devices DROP COLUMN blocked;",
        "alter table devices\n  rename column blocked to is_blocked;",
        "ALTER TABLE devices RENAME TO machines;",
        "ALTER TABLE devices ALTER COLUMN blocked TYPE TEXT;",
        "ALTER TABLE devices ADD COLUMN owner TEXT NOT NULL;",
        "ALTER TABLE devices ADD CONSTRAINT one_name UNIQUE (name);",
    ] {
        let v = violations("0099_new.sql", bad);
        assert_eq!(v.len(), 1, "{bad}: {v:?}");
        assert!(v[0].starts_with("0099_new.sql: "), "{v:?}");
        // Said to be a contract step: allowed.
        let said = format!("-- contract: nothing reads it since 1.4\n{bad}");
        assert!(violations("0099_new.sql", &said).is_empty(), "{said}");
    }
    for good in [
        "CREATE TABLE things (id TEXT PRIMARY KEY);",
        "ALTER TABLE devices ADD COLUMN owner TEXT;",
        "ALTER TABLE devices ADD COLUMN hits BIGINT NOT NULL DEFAULT 0;",
        "CREATE INDEX devices_by_owner ON devices (owner);",
        "UPDATE devices SET blocked = 0 WHERE blocked IS NULL; -- DROP TABLE in a comment",
        "DROP INDEX devices_by_owner;",
    ] {
        assert!(violations("0099_new.sql", good).is_empty(), "{good}");
    }
}
