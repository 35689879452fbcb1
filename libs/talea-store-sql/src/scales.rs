//! The cache of asset scales: read once, kept for the store's life.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use talea_core::{AssetCode, Scale};
use talea_store::StoreError;

use crate::backend::{Param, SqlBackend};
use crate::decode;

/// Asset scales by code. An asset's scale never changes and assets are
/// never deleted, so a cached entry never goes stale; caching saves a
/// statement per batch. Only registered assets are cached, so the map is
/// bounded by the (small) registry.
#[derive(Debug, Default)]
pub struct ScaleCache {
    scales: RwLock<HashMap<AssetCode, Scale>>,
}

impl ScaleCache {
    /// Scales of the given assets that are registered (absent: unknown),
    /// from the cache, reading the misses in one statement on a read
    /// connection (taken only when something is missing).
    pub async fn get<B: SqlBackend>(
        &self,
        store: &B,
        codes: &[&AssetCode],
    ) -> Result<HashMap<AssetCode, Scale>, StoreError> {
        let mut found = HashMap::with_capacity(codes.len());
        let mut missing: Vec<&str> = Vec::new();
        {
            // A poisoned lock only means a panic elsewhere while inserting a
            // correct value; the map itself is still valid.
            let cache = self.scales.read().unwrap_or_else(PoisonError::into_inner);
            for &code in codes {
                match cache.get(code) {
                    Some(&scale) => {
                        found.insert(code.clone(), scale);
                    }
                    None => missing.push(code.as_str()),
                }
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let mut conn = store.reader().await?;
        let rows =
            decode::fetch::<B>(&mut conn, B::SQL.scales, &[Param::Texts(Some(&missing))]).await?;
        let mut cache = self.scales.write().unwrap_or_else(PoisonError::into_inner);
        for row in &rows {
            let code = decode::asset_code::<B>(row, "code")?;
            let scale = decode::scale::<B>(row, "scale")?;
            cache.insert(code.clone(), scale);
            found.insert(code, scale);
        }
        Ok(found)
    }
}
