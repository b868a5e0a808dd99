//! The schema `hive`, created and upgraded by hive itself from the versioned files in
//! `migrations/postgres/` (compiled in, so the binary and its schema cannot drift apart).
//!
//! Several workers start at once against a new database: the whole upgrade runs in one
//! transaction under an advisory lock, so one applies each missing version and the others find
//! it done. A database already at a version this hive does not know is refused, not written to.

use tokio_postgres::types::Type;

use super::{Db, StateError};

/// Every migration, in order: (version, name, SQL).
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "soak",
        include_str!("../../../migrations/postgres/0002_soak.sql"),
    ),
];

/// The advisory lock key hive's migrations take ("hive" in ASCII).
const LOCK: i64 = 0x6869_7665;

/// The schema version this hive writes.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// Bring the schema to [`latest`].
pub async fn migrate(db: &Db) -> Result<(), StateError> {
    let found = current(db).await?;
    if found > latest() {
        return Err(StateError::TooNew {
            url: db.url().to_string(),
            found,
            known: latest(),
        });
    }
    if found == latest() {
        return Ok(());
    }
    let mut sql = format!(
        "BEGIN;\nSELECT pg_advisory_xact_lock({LOCK});\nCREATE SCHEMA IF NOT EXISTS hive;\n\
         CREATE TABLE IF NOT EXISTS hive.migrations (version integer PRIMARY KEY, name text NOT NULL, \
         applied_at timestamptz NOT NULL DEFAULT now());\n"
    );
    // Under the lock, each step checks again that it is still missing: another process may have
    // applied it between our look and the lock.
    for (version, name, body) in MIGRATIONS {
        sql.push_str(&format!(
            "DO $hive$ BEGIN IF NOT EXISTS (SELECT 1 FROM hive.migrations WHERE version = {version}) THEN\n\
             EXECUTE {body};\nINSERT INTO hive.migrations (version, name) VALUES ({version}, '{name}');\n\
             END IF; END $hive$;\n",
            body = quote(body)
        ));
    }
    sql.push_str("COMMIT;\n");
    db.batch(&sql).await
}

/// The schema version in the database (0 when hive never wrote to it).
pub async fn current(db: &Db) -> Result<i32, StateError> {
    let rows = db
        .query(
            "SELECT to_regclass($1) IS NOT NULL",
            &[(&"hive.migrations", Type::TEXT)],
        )
        .await?;
    let exists: bool = rows.first().map(|r| r.get(0)).unwrap_or(false);
    if !exists {
        return Ok(0);
    }
    let rows = db
        .query("SELECT coalesce(max(version), 0) FROM hive.migrations", &[])
        .await?;
    Ok(rows.first().map(|r| r.get(0)).unwrap_or(0))
}

/// A SQL string literal (dollar-quoted, so the migration's own quotes need no escaping).
fn quote(body: &str) -> String {
    format!("$migration${body}$migration$")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_consecutive_from_one() {
        for (i, (v, _, body)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*v, i as i32 + 1);
            assert!(
                !body.contains("$migration$"),
                "migration {v} breaks the quoting"
            );
        }
    }
}
