//! Embedded migrations, one set per backend.

use sqlx::SqlStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use crate::store::Backend;

const SQLITE: &[(i64, &str, &str)] = &[
    (1, "foundation", include_str!("../migrations/sqlite/0001_foundation.sql")),
    (2, "data items", include_str!("../migrations/sqlite/0002_data_items.sql")),
    (3, "requests", include_str!("../migrations/sqlite/0003_requests.sql")),
    (4, "redress", include_str!("../migrations/sqlite/0004_redress.sql")),
    (5, "case members", include_str!("../migrations/sqlite/0005_case_members.sql")),
    (6, "request provisions", include_str!("../migrations/sqlite/0006_request_provisions.sql")),
    (7, "evidence", include_str!("../migrations/sqlite/0007_evidence.sql")),
    (8, "intel", include_str!("../migrations/sqlite/0008_intel.sql")),
    (9, "federation", include_str!("../migrations/sqlite/0009_federation.sql")),
    (10, "packages", include_str!("../migrations/sqlite/0010_packages.sql")),
    (
        11,
        "notifications and case mirrors",
        include_str!("../migrations/sqlite/0011_notifications_case_mirrors.sql"),
    ),
    (12, "psi", include_str!("../migrations/sqlite/0012_psi.sql")),
    (13, "psi rotation", include_str!("../migrations/sqlite/0013_psi_rotation.sql")),
    (14, "reports", include_str!("../migrations/sqlite/0014_reports.sql")),
    (15, "maintenance", include_str!("../migrations/sqlite/0015_maintenance.sql")),
    (16, "intel status pages", include_str!("../migrations/sqlite/0016_intel_status_pages.sql")),
    (17, "privilege", include_str!("../migrations/sqlite/0017_privilege.sql")),
    (18, "ledger subjects", include_str!("../migrations/sqlite/0018_ledger_subjects.sql")),
];
const POSTGRES: &[(i64, &str, &str)] = &[
    (1, "foundation", include_str!("../migrations/postgres/0001_foundation.sql")),
    (2, "data items", include_str!("../migrations/postgres/0002_data_items.sql")),
    (3, "requests", include_str!("../migrations/postgres/0003_requests.sql")),
    (4, "redress", include_str!("../migrations/postgres/0004_redress.sql")),
    (5, "case members", include_str!("../migrations/postgres/0005_case_members.sql")),
    (6, "request provisions", include_str!("../migrations/postgres/0006_request_provisions.sql")),
    (7, "evidence", include_str!("../migrations/postgres/0007_evidence.sql")),
    (8, "intel", include_str!("../migrations/postgres/0008_intel.sql")),
    (9, "federation", include_str!("../migrations/postgres/0009_federation.sql")),
    (10, "packages", include_str!("../migrations/postgres/0010_packages.sql")),
    (
        11,
        "notifications and case mirrors",
        include_str!("../migrations/postgres/0011_notifications_case_mirrors.sql"),
    ),
    (12, "psi", include_str!("../migrations/postgres/0012_psi.sql")),
    (13, "psi rotation", include_str!("../migrations/postgres/0013_psi_rotation.sql")),
    (14, "reports", include_str!("../migrations/postgres/0014_reports.sql")),
    (15, "maintenance", include_str!("../migrations/postgres/0015_maintenance.sql")),
    (16, "intel status pages", include_str!("../migrations/postgres/0016_intel_status_pages.sql")),
    (17, "privilege", include_str!("../migrations/postgres/0017_privilege.sql")),
    (18, "ledger subjects", include_str!("../migrations/postgres/0018_ledger_subjects.sql")),
];

/// The migrator for `backend`.
pub(crate) fn migrator(backend: Backend) -> Migrator {
    let set = match backend {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
    };
    Migrator::with_migrations(
        set.iter()
            .map(|(v, d, sql)| {
                Migration::new(
                    *v,
                    (*d).into(),
                    MigrationType::Simple,
                    SqlStr::from_static(sql),
                    false,
                )
            })
            .collect(),
    )
}
