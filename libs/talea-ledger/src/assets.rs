//! The asset cache: definitions never change once registered, so the
//! ledger keeps every one it has read and resolves scales from it.

use std::collections::{BTreeSet, HashMap};

use talea_api::ApiError;
use talea_core::{Asset, AssetCode};

use crate::LedgerService;
use crate::convert::{Scales, store_error};

impl LedgerService {
    pub(crate) async fn asset(&self, code: &AssetCode) -> Result<Option<Asset>, ApiError> {
        if let Some(asset) = self.read_cache().get(code) {
            return Ok(Some(asset.clone()));
        }
        let found = self
            .inner
            .store
            .asset(code)
            .await
            .map_err(|e| store_error(&e))?;
        if let Some(asset) = &found {
            self.write_cache().insert(code.clone(), asset.clone());
        }
        Ok(found)
    }

    pub(crate) fn read_cache(&self) -> std::sync::RwLockReadGuard<'_, HashMap<AssetCode, Asset>> {
        // The cache holds immutable definitions; a poisoned lock leaves it intact.
        self.inner.assets.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn write_cache(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<AssetCode, Asset>> {
        self.inner.assets.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Scales of every asset in `codes`.
    pub(crate) async fn scales(&self, codes: BTreeSet<AssetCode>) -> Result<Scales, ApiError> {
        let mut scales = Scales::new();
        for code in codes {
            if let Some(asset) = self.asset(&code).await? {
                scales.insert(code, asset.scale);
            }
        }
        Ok(scales)
    }
}
