//! Layers: their keys and salts, and the bucket ranges their experiments hold.

use sqlx::{PgPool, Postgres, Transaction};

use super::{Result, StorageError};
use crate::domain::{
    experiment::TOTAL_BP,
    rollout::{Layer, LayerMember},
    Status,
};

pub(super) async fn layer_id(
    tx: &mut Transaction<'static, Postgres>,
    key: &str,
    field: &'static str,
    lock: &str,
) -> Result<i64> {
    sqlx::query_scalar(&format!("SELECT id FROM layers WHERE key = $1 {lock}"))
        .bind(key)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StorageError::UnknownLayer { key: key.to_owned(), field })
}

/// The ranges experiments that are not stopped hold in `layer`, in order.
pub(super) async fn taken<'e>(db: impl sqlx::PgExecutor<'e>, layer: i64) -> Result<Vec<[u32; 2]>> {
    let rows: Vec<(i32, i32)> = sqlx::query_as(
        "SELECT layer_start, layer_end FROM experiments
         WHERE layer_id = $1 AND status <> 'stopped' ORDER BY layer_start",
    )
    .bind(layer)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|(s, e)| [s as u32, e as u32]).collect())
}

/// The free ranges of a layer whose taken ranges are `taken` (sorted, disjoint).
pub fn gaps(taken: &[[u32; 2]]) -> Vec<[u32; 2]> {
    let mut free = Vec::new();
    let mut at = 0;
    for [s, e] in taken {
        if *s > at {
            free.push([at, *s]);
        }
        at = at.max(*e);
    }
    if at < TOTAL_BP {
        free.push([at, TOTAL_BP]);
    }
    free
}

/// The free ranges of the layer `key` (empty when it does not exist).
pub async fn free_ranges(db: &PgPool, key: &str) -> Result<Vec<[u32; 2]>> {
    let layer: Option<i64> =
        sqlx::query_scalar("SELECT id FROM layers WHERE key = $1").bind(key).fetch_optional(db).await?;
    match layer {
        Some(layer) => Ok(gaps(&taken(db, layer).await?)),
        None => Ok(Vec::new()),
    }
}

/// A new layer with a fresh salt; `None` when the key is taken.
pub async fn create_layer(db: &PgPool, key: &str, description: Option<&str>) -> Result<Option<Layer>> {
    let salt = uuid::Uuid::new_v4().simple().to_string();
    Ok(sqlx::query_as(
        "INSERT INTO layers (key, description, salt) VALUES ($1, $2, $3)
         ON CONFLICT (key) DO NOTHING RETURNING key, description, salt, created_at",
    )
    .bind(key)
    .bind(description)
    .bind(salt)
    .fetch_optional(db)
    .await?)
}

pub async fn layers(db: &PgPool) -> Result<Vec<Layer>> {
    Ok(sqlx::query_as("SELECT key, description, salt, created_at FROM layers ORDER BY key").fetch_all(db).await?)
}

pub async fn layer(db: &PgPool, key: &str) -> Result<Option<Layer>> {
    Ok(sqlx::query_as("SELECT key, description, salt, created_at FROM layers WHERE key = $1")
        .bind(key)
        .fetch_optional(db)
        .await?)
}

/// The experiments holding a range of layer `key` (not stopped), by range.
pub async fn layer_members(db: &PgPool, key: &str) -> Result<Vec<LayerMember>> {
    let rows: Vec<(i64, String, Status, i32, i32)> = sqlx::query_as(
        "SELECT e.id, e.name, e.status, e.layer_start, e.layer_end FROM experiments e
         JOIN layers l ON l.id = e.layer_id WHERE l.key = $1 AND e.status <> 'stopped' ORDER BY e.layer_start",
    )
    .bind(key)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, name, status, s, e)| LayerMember { id, name, status, range: [s as u32, e as u32] })
        .collect())
}
