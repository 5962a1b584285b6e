-- Releases of the differentially private public report (entente-report, docs/transparency.md).
-- Each release's noisy figures are drawn once and kept: publishing the period again returns
-- the same file (no averaging attack); a new release spends new privacy budget.
CREATE TABLE report_releases (
    period TEXT NOT NULL,
    release BIGINT NOT NULL,
    epsilon TEXT NOT NULL,
    report BYTEA NOT NULL,
    report_sha256 TEXT NOT NULL,
    created_at TEXT NOT NULL,
    ledger_index BIGINT NOT NULL,
    PRIMARY KEY (period, release)
);
