//! Set-up for Entente's own tests. Nothing here goes through the gate: that is why it is a
//! separate crate, a dev-dependency only, so that the shipped `entente` binary cannot reach it
//! (`cargo tree -p entente-cli -e normal` does not list it).

/// What bypasses the gate and the ledger. A reviewer greps for `danger::`.
pub mod danger {
    use sqlx::AssertSqlSafe;
    use sqlx::any::AnyPoolOptions;

    /// Runs raw SQL on the database at `url`: creating and dropping test schemas, or, in the
    /// tamper tests, rewriting a node's ledger behind its back to show that it is caught.
    ///
    /// # Errors
    /// Connection or statement errors.
    pub async fn admin_execute(url: &str, sql: &str) -> Result<(), sqlx::Error> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new().max_connections(1).connect(url).await?;
        // Test set-up composes these statements from fixed text and generated names.
        sqlx::raw_sql(AssertSqlSafe(sql.to_owned())).execute(&pool).await?;
        pool.close().await;
        Ok(())
    }

    /// Reads rows of text columns from the database at `url` (a test checking what a node
    /// stored, behind its back). Cast non-text columns in the query.
    ///
    /// # Errors
    /// Connection or statement errors.
    pub async fn admin_fetch(url: &str, sql: &str) -> Result<Vec<Vec<String>>, sqlx::Error> {
        use sqlx::Row as _;
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new().max_connections(1).connect(url).await?;
        let rows = sqlx::query(AssertSqlSafe(sql.to_owned())).fetch_all(&pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut cols = Vec::with_capacity(r.len());
            for i in 0..r.len() {
                cols.push(r.try_get::<String, _>(i)?);
            }
            out.push(cols);
        }
        pool.close().await;
        Ok(out)
    }
}
