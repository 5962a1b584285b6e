//! The store: connection, migrations and the read side. Writes live in [`crate::gate`].

use entente_core::Stamp;
use entente_core::ledger::{self, Frontier, Hash, MapHashReader, RecordProof, TileRef, TreeProof};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, AssertSqlSafe, Executor, Row};
use std::collections::HashMap;
use std::time::Duration;

/// Which database a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file (embedded default).
    Sqlite,
    /// PostgreSQL server (production).
    Postgres,
}

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The URL names no supported database.
    #[error("unsupported database URL `{0}`: expected sqlite://PATH or postgres://HOST/DB")]
    UnsupportedUrl(String),
    /// The database could not be opened.
    #[error("cannot open database {url}: {source}")]
    Open {
        /// The URL, without password.
        url: String,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// The file exists but is not a SQLite database, or its schema is damaged.
    #[error(
        "database {url} is unreadable or corrupted ({detail}); restore it from a backup — nothing was changed"
    )]
    Corrupt {
        /// The URL.
        url: String,
        /// What the database said.
        detail: String,
    },
    /// Migrations failed.
    #[error("cannot migrate database {url}: {source}")]
    Migrate {
        /// The URL.
        url: String,
        /// The migrator's error.
        source: sqlx::migrate::MigrateError,
    },
    /// A query failed.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// Stored data contradicts itself.
    #[error("stored data is inconsistent: {0}")]
    Inconsistent(String),
    /// A requested item does not exist.
    #[error("{0} not found")]
    NotFound(String),
}

/// A user of the node, as stored (the token only as its SHA-256).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    /// User name.
    pub name: String,
    /// Role.
    pub role: entente_core::Role,
    /// When the user was created.
    pub created_at: Stamp,
}

/// A case as stored.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CaseRecord {
    /// Case identifier.
    pub id: String,
    /// Title.
    pub title: String,
    /// Offense concepts (lexicon ids).
    pub concepts: Vec<String>,
    /// Who opened it.
    pub opened_by: String,
    /// When.
    pub opened_at: Stamp,
    /// The ledger entry that recorded the opening.
    pub ledger_index: u64,
}

/// A connection pool to the node's database.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) pool: AnyPool,
    backend: Backend,
    url: String,
}

pub(crate) fn to_i64(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n)
        .map_err(|_| StoreError::Inconsistent(format!("{n} exceeds the database integer range")))
}

pub(crate) fn to_u64(n: i64) -> Result<u64, StoreError> {
    u64::try_from(n)
        .map_err(|_| StoreError::Inconsistent(format!("negative count {n} in the database")))
}

/// Column `i` of `row` as a [`Stamp`]: text that is not an RFC 3339 instant is an
/// inconsistency of the stored data, named with its column.
pub(crate) fn stamp(row: &AnyRow, i: usize) -> Result<Stamp, StoreError> {
    let text: String = row.try_get(i)?;
    parse_stamp(row, i, &text)
}

/// Column `i` of `row` as an optional [`Stamp`] (NULL is `None`).
pub(crate) fn opt_stamp(row: &AnyRow, i: usize) -> Result<Option<Stamp>, StoreError> {
    let text: Option<String> = row.try_get(i)?;
    text.map(|t| parse_stamp(row, i, &t)).transpose()
}

fn parse_stamp(row: &AnyRow, i: usize, text: &str) -> Result<Stamp, StoreError> {
    use sqlx::Column as _;
    text.parse().map_err(|e| {
        let column = row.columns().get(i).map_or("?", |c| c.name());
        StoreError::Inconsistent(format!("column {column}: {e}"))
    })
}

pub(crate) fn to_hash(bytes: &[u8]) -> Result<Hash, StoreError> {
    let arr: [u8; 32] = bytes.try_into().map_err(|_| {
        StoreError::Inconsistent(format!("stored hash of {} bytes, expected 32", bytes.len()))
    })?;
    Ok(Hash(arr))
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…{}", &url[..s], &url[at..]),
        _ => url.to_owned(),
    }
}

impl Store {
    /// Opens (creating if needed) the database at `url` and applies migrations.
    ///
    /// # Errors
    /// Unsupported URL, unreachable server, corrupted file, failed migration.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(redact(url)));
        };
        let shown = redact(url);
        if backend == Backend::Sqlite {
            // Check the file on one plain connection first: a pool whose `after_connect`
            // fails on a damaged file retries until its acquire timeout and then reports only
            // "pool timed out", hiding the cause.
            check_sqlite(url, &shown).await?;
        }
        let mut options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(30));
        options = match backend {
            Backend::Sqlite => options.max_connections(4).after_connect(|conn, _meta| {
                Box::pin(async move {
                    // synchronous = FULL: a commit is durable when it returns. Statement
                    // journals of the gate's multi-row inserts stay in memory; a 64 MiB page
                    // cache keeps the upper levels of the ledger tables resident.
                    conn.execute(
                        "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
                         PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
                         PRAGMA temp_store = MEMORY; PRAGMA cache_size = -65536;",
                    )
                    .await?;
                    Ok(())
                })
            }),
            Backend::Postgres => options.max_connections(8),
        };
        let pool = options.connect(url).await.map_err(|e| classify_open(&shown, e))?;
        let store = Store { pool, backend, url: shown.clone() };
        crate::schema::migrator(backend)
            .run(&store.pool)
            .await
            .map_err(|source| StoreError::Migrate { url: shown, source })?;
        Ok(store)
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The database URL without credentials.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A node metadata value.
    ///
    /// # Errors
    /// Database errors.
    pub async fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT v FROM node_meta WHERE k = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The ledger's size and its latest signed checkpoint (none before the first entry).
    ///
    /// # Errors
    /// Database errors.
    pub async fn ledger_head(&self) -> Result<(u64, Option<Vec<u8>>), StoreError> {
        let row = sqlx::query("SELECT size, checkpoint FROM ledger_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok((to_u64(row.try_get(0)?)?, row.try_get(1)?))
    }

    /// Every stored checkpoint, by tree size.
    ///
    /// # Errors
    /// Database errors.
    pub async fn checkpoints(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let rows = sqlx::query("SELECT size, note FROM ledger_checkpoints ORDER BY size")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((to_u64(r.try_get(0)?)?, r.try_get(1)?))).collect()
    }

    /// Ledger entries with `from <= index < to`, in order.
    ///
    /// # Errors
    /// Database errors.
    pub async fn entries(&self, from: u64, to: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT idx, entry FROM ledger_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx",
        )
        .bind(to_i64(from)?)
        .bind(to_i64(to)?)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((to_u64(r.try_get(0)?)?, r.try_get(1)?))).collect()
    }

    /// Stored tree hashes by stored-hash index, in the order asked.
    ///
    /// # Errors
    /// A missing hash is [`StoreError::NotFound`].
    pub async fn hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, StoreError> {
        read_hashes(&self.pool, indexes).await
    }

    /// Every stored hash with index in `from..to`, as `(index, hash)`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn hash_range(&self, from: u64, to: u64) -> Result<Vec<(u64, Hash)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, hash FROM ledger_hashes WHERE id >= $1 AND id < $2 ORDER BY id",
        )
        .bind(to_i64(from)?)
        .bind(to_i64(to)?)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let h: Vec<u8> = r.try_get(1)?;
                Ok((to_u64(r.try_get(0)?)?, to_hash(&h)?))
            })
            .collect()
    }

    /// Inclusion proof of entry `index` in the tree of `tree_size` entries.
    ///
    /// # Errors
    /// `index >= tree_size`, a tree larger than the ledger, or missing hashes.
    pub async fn inclusion_proof(
        &self,
        tree_size: u64,
        index: u64,
    ) -> Result<RecordProof, StoreError> {
        let needed = ledger::inclusion_proof_indexes(tree_size, index)
            .map_err(|e| StoreError::NotFound(format!("proof: {e}")))?;
        let map = self.hash_map(&needed).await?;
        ledger::prove_inclusion(tree_size, index, &map)
            .map_err(|e| StoreError::Inconsistent(e.to_string()))
    }

    /// Consistency proof from the tree of `old_size` entries to the tree of `tree_size`.
    ///
    /// # Errors
    /// Sizes out of range, or missing hashes.
    pub async fn consistency_proof(
        &self,
        tree_size: u64,
        old_size: u64,
    ) -> Result<TreeProof, StoreError> {
        let needed = ledger::consistency_proof_indexes(tree_size, old_size)
            .map_err(|e| StoreError::NotFound(format!("proof: {e}")))?;
        let map = self.hash_map(&needed).await?;
        ledger::prove_consistency(tree_size, old_size, &map)
            .map_err(|e| StoreError::Inconsistent(e.to_string()))
    }

    async fn hash_map(&self, needed: &[u64]) -> Result<MapHashReader, StoreError> {
        let hashes = self.hashes(needed).await?;
        Ok(MapHashReader(needed.iter().copied().zip(hashes).collect()))
    }

    /// The bytes of a C2SP tlog-tiles tile of the ledger at its current size: a hash tile (32
    /// bytes per hash) or an entry bundle.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the tile does not exist at that width.
    pub async fn tile(&self, tile: TileRef) -> Result<Vec<u8>, StoreError> {
        let (size, _) = self.ledger_head().await?;
        match tile {
            TileRef::Hashes { level, index, width } => {
                if ledger::tile_width_in_tree(level, index, size) < width {
                    return Err(StoreError::NotFound(format!(
                        "tile {}",
                        ledger::tile_path(level, index, width)
                    )));
                }
                let hashes = self.hashes(&ledger::tile_hash_indexes(level, index, width)).await?;
                Ok(hashes.iter().flat_map(|h| h.0).collect())
            }
            TileRef::Entries { index, width } => {
                if ledger::tile_width_in_tree(0, index, size) < width {
                    return Err(StoreError::NotFound(format!(
                        "entry bundle {}",
                        ledger::entries_path(index, width)
                    )));
                }
                let from = index * ledger::TILE_WIDTH;
                let entries = self.entries(from, from + width).await?;
                ledger::encode_entry_bundle(entries.iter().map(|(_, e)| e.as_slice()))
                    .map_err(StoreError::Inconsistent)
            }
        }
    }

    /// The user holding a token, by the token's SHA-256 (hex).
    ///
    /// # Errors
    /// Database errors, or a stored role that is not a role.
    pub async fn user_by_token_sha256(
        &self,
        token_sha256: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query("SELECT name, role, created_at FROM users WHERE token_sha256 = $1")
            .bind(token_sha256)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| user_from_row(&r)).transpose()
    }

    /// Every user, by name.
    ///
    /// # Errors
    /// Database errors.
    pub async fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let rows = sqlx::query("SELECT name, role, created_at FROM users ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Number of cases (for metrics; reveals no case).
    ///
    /// # Errors
    /// Database errors.
    pub async fn case_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cases").fetch_one(&self.pool).await?;
        to_u64(n)
    }
}

fn user_from_row(r: &AnyRow) -> Result<UserRecord, StoreError> {
    let role: String = r.try_get(1)?;
    Ok(UserRecord {
        name: r.try_get(0)?,
        role: role.parse().map_err(|e| StoreError::Inconsistent(format!("{e}")))?,
        created_at: stamp(r, 2)?,
    })
}

/// Opens one connection to the SQLite database at `url` and runs `PRAGMA quick_check`, which
/// only reads: a file that is not a database, or a damaged one, is reported as
/// [`StoreError::Corrupt`] and left untouched.
async fn check_sqlite(url: &str, shown: &str) -> Result<(), StoreError> {
    use sqlx::Connection as _;
    let mut conn = sqlx::AnyConnection::connect(url).await.map_err(|e| classify_open(shown, e))?;
    let check: Result<String, sqlx::Error> = match conn.execute("PRAGMA busy_timeout = 10000").await
    {
        Ok(_) => sqlx::query_scalar("PRAGMA quick_check").fetch_one(&mut conn).await,
        Err(e) => Err(e),
    };
    let _ = conn.close().await;
    match check {
        Ok(s) if s == "ok" => Ok(()),
        Ok(s) => Err(StoreError::Corrupt { url: shown.to_owned(), detail: s }),
        Err(e) => Err(classify_open(shown, e)),
    }
}

fn classify_open(url: &str, e: sqlx::Error) -> StoreError {
    let text = e.to_string();
    if text.contains("not a database") || text.contains("malformed") || text.contains("corrupt") {
        StoreError::Corrupt { url: url.to_owned(), detail: text }
    } else {
        StoreError::Open { url: url.to_owned(), source: e }
    }
}

/// Reads stored hashes by index through any executor (pool or transaction).
pub(crate) async fn read_hashes<'e, E>(exec: E, indexes: &[u64]) -> Result<Vec<Hash>, StoreError>
where
    E: Executor<'e, Database = sqlx::Any>,
{
    if indexes.is_empty() {
        return Ok(Vec::new());
    }
    let list = indexes.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    // The list holds only integers formatted here, never caller text.
    let sql = format!("SELECT id, hash FROM ledger_hashes WHERE id IN ({list})");
    let rows = sqlx::query(AssertSqlSafe(sql)).fetch_all(exec).await?;
    let mut found: HashMap<u64, Hash> = HashMap::with_capacity(rows.len());
    for r in &rows {
        let h: Vec<u8> = r.try_get(1)?;
        found.insert(to_u64(r.try_get(0)?)?, to_hash(&h)?);
    }
    indexes
        .iter()
        .map(|i| {
            found.get(i).copied().ok_or_else(|| StoreError::NotFound(format!("tree hash {i}")))
        })
        .collect()
}

/// Rebuilds the frontier of a tree of `size` leaves from the stored hashes.
pub(crate) async fn load_frontier<'e, E>(exec: E, size: u64) -> Result<Frontier, StoreError>
where
    E: Executor<'e, Database = sqlx::Any>,
{
    let idx = Frontier::indexes_for(size);
    let hashes = read_hashes(exec, &idx).await?;
    Frontier::from_hashes(size, &hashes)
        .ok_or_else(|| StoreError::Inconsistent(format!("cannot rebuild the tree of size {size}")))
}

/// A schema name for [`fresh_schema`]: 1 to 63 lowercase letters, digits and `_`, starting
/// with a letter (so it needs no quoting).
fn schema_name(name: &str) -> Result<&str, StoreError> {
    let ok = name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(name)
    } else {
        Err(StoreError::UnsupportedUrl(format!(
            "schema `{name}`: expected 1 to 63 lowercase letters, digits and _, starting with a letter"
        )))
    }
}

/// Makes schema `name` empty on the PostgreSQL server at `url` (dropping what it held) and
/// returns the URL of a store in it: a scratch database for `entente bench`, never a node's.
///
/// # Errors
/// A URL that is not PostgreSQL, an invalid name, or the server's error.
pub async fn fresh_schema(url: &str, name: &str) -> Result<String, StoreError> {
    let name = schema_name(name)?;
    if !url.starts_with("postgres") {
        return Err(StoreError::UnsupportedUrl(url.to_owned()));
    }
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new().max_connections(1).connect(url).await?;
    // The name is checked above: lowercase letters, digits and `_` only.
    let sql = format!("DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}");
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(&pool).await?;
    pool.close().await;
    let sep = if url.contains('?') { '&' } else { '?' };
    Ok(format!("{url}{sep}options=-c%20search_path%3D{name}"))
}

/// Drops schema `name` made by [`fresh_schema`] on the PostgreSQL server at `url`.
///
/// # Errors
/// An invalid name, or the server's error.
pub async fn drop_schema(url: &str, name: &str) -> Result<(), StoreError> {
    let name = schema_name(name)?;
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new().max_connections(1).connect(url).await?;
    // The name is checked above: lowercase letters, digits and `_` only.
    sqlx::raw_sql(AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {name} CASCADE")))
        .execute(&pool)
        .await?;
    pool.close().await;
    Ok(())
}

impl Store {
    /// How many events this node holds for request `id` (0 if it does not know it): how a
    /// caller sees a partner's transition arrive without a recorded read.
    ///
    /// # Errors
    /// Database errors.
    pub async fn request_event_count(&self, id: &str) -> Result<u64, StoreError> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM request_events WHERE request_id = $1")
                .bind(id)
                .fetch_one(&self.pool)
                .await?;
        to_u64(n)
    }

    /// The originating party of a datum this node holds (`None` if it holds no such datum).
    ///
    /// # Errors
    /// Database errors.
    pub async fn datum_originator(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT originator FROM data_items WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Ids of the data whose retention limit has passed at `now` and that are not destroyed yet.
    ///
    /// # Errors
    /// Database errors, or a stored limit or id that does not parse.
    pub async fn data_due_for_destruction(
        &self,
        now: jiff::Timestamp,
    ) -> Result<Vec<entente_core::DatumId>, StoreError> {
        self.due_for_destruction("data_items", now).await
    }

    /// Ids of the rows of `table` not destroyed whose retention limit is at or before `now`.
    pub(crate) async fn due_for_destruction<T>(
        &self,
        table: &'static str,
        now: jiff::Timestamp,
    ) -> Result<Vec<T>, StoreError>
    where
        T: TryFrom<String, Error = entente_core::ids::InvalidIdentifier>,
    {
        // `table` is one of the crate's own table names, never input.
        let sql = format!(
            "SELECT id, retain_until FROM {table} WHERE destroyed_at IS NULL AND retain_until IS NOT NULL ORDER BY id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool).await?;
        let mut due = Vec::new();
        for r in &rows {
            let until: String = r.try_get(1)?;
            let until: jiff::Timestamp = until
                .parse()
                .map_err(|e| StoreError::Inconsistent(format!("retain_until `{until}`: {e}")))?;
            if until <= now {
                let id: String = r.try_get(0)?;
                due.push(T::try_from(id).map_err(|e| StoreError::Inconsistent(e.to_string()))?);
            }
        }
        Ok(due)
    }
}

impl Store {
    /// The requesting party's provisions a request was made for (metadata read with the
    /// request, whose access the gate records).
    ///
    /// # Errors
    /// Database errors, or an unknown request.
    pub async fn request_provisions(&self, id: &str) -> Result<Vec<String>, StoreError> {
        let p: Option<String> = sqlx::query_scalar("SELECT provisions FROM requests WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let p = p.ok_or_else(|| StoreError::NotFound(format!("request `{id}`")))?;
        serde_json::from_str(&p)
            .map_err(|e| StoreError::Inconsistent(format!("request {id} provisions: {e}")))
    }
}

impl Store {
    /// Number of legal clocks of open requests that are past due at `now`: a count for
    /// metrics, revealing no request (reads only; nothing is recorded).
    ///
    /// # Errors
    /// Database errors, or requests that no longer replay under their agreement.
    pub async fn overdue_clocks(
        &self,
        engine: &entente_policy::engine::Engine,
        now: jiff::Timestamp,
    ) -> Result<u64, crate::GateError> {
        let mut tx = self.pool.begin().await?;
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT id FROM requests").fetch_all(&mut *tx).await?;
        let mut overdue = 0u64;
        for id in ids {
            let r = crate::requests::load(&mut tx, engine, &id).await?;
            if r.state.is_open() {
                overdue += r
                    .clocks
                    .iter()
                    .filter(|c| c.status(now) == entente_policy::request::ClockStatus::Missed)
                    .count() as u64;
            }
        }
        tx.rollback().await?;
        Ok(overdue)
    }
}
