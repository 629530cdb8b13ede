//! Key management on an open store: lock and unlock, passphrase changes,
//! recovery secrets, data-key rotation and re-encryption.

use super::idb::errors::from_dom;
use super::idb::layout::{self, META, META_HEAD_KEY, META_KEYRING_KEY, META_KEYS_KEY, PAGES};
use super::idb::txn::{fire, pending, request, Durability, Txn};
use super::keys::broadcast::KeyEvent;
use super::keys::credential::Credential;
use super::keys::slots;
use super::platform::{BrowserClock, BrowserEntropy};
use super::store::{put_ring, ring_from_js, unlock, IdbStore};
use crate::at_rest::{AtRest, SealedAtRest};
use crate::clock::Clock;
use crate::crypto::keyring::{KeyRing, Reencryption};
use crate::crypto::recovery::RecoverySecret;
use crate::error::{Error, ErrorCode, Result};
use crate::page::{self, Page};
use crate::timestamp;
use js_sys::Array;
use std::rc::Rc;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::IdbKeyRange;
use zeroize::Zeroizing;

/// What `reencryptAll()` did.
#[derive(Debug, Clone)]
pub(crate) struct Reencrypted {
    pub(crate) key_id: u32,
    pub(crate) records: u64,
    pub(crate) retired: Vec<u32>,
}

fn not_encrypted(what: &str) -> Error {
    Error::validation(
        "store",
        format!("{what} needs an encrypted store; this one was created without a passphrase or keyEncryptionKey"),
    )
}

impl IdbStore {
    fn sealed(&self, what: &str) -> Result<Rc<AtRest>> {
        self.db()?;
        if !self.keys.encrypted() {
            return Err(not_encrypted(what));
        }
        self.keys.current()
    }

    /// Unlocks this context with `credential`.
    pub(crate) async fn unlock(&self, credential: &Credential) -> Result<()> {
        let db = self.db()?;
        let Some(blind) = self.blind_indexes else {
            return Err(not_encrypted("unlock()"));
        };
        let (at_rest, session) = unlock(db, &self.identity.store_id, blind, credential).await?;
        self.db()?;
        self.keys.set(at_rest);
        self.keys.set_session(session);
        Ok(())
    }

    /// Zeroizes the keys here and in every other context of the store.
    pub(crate) fn lock(&self) -> Result<()> {
        if !self.keys.encrypted() {
            return Err(not_encrypted("lock()"));
        }
        self.keys.lock_everywhere();
        Ok(())
    }

    /// Proves `credential` opens the same master key this context holds.
    async fn check_credential(&self, at_rest: &AtRest, credential: &Credential) -> Result<()> {
        let AtRest::Sealed(s) = at_rest else {
            return Err(not_encrypted("this"));
        };
        let txn = Txn::begin(self.db()?, &[META], false, self.durability)?;
        let keys = request(txn.store(META)?.get(&JsValue::from_str(META_KEYS_KEY))).await?;
        let master = credential
            .unwrap(&self.identity.store_id, &slots::slots_from_js(&keys)?)
            .await?;
        if !master.same_as(s.keys.master()) {
            return Err(Error::new(
                ErrorCode::BadKey,
                "that credential unlocks a different key than this store's",
            ));
        }
        Ok(())
    }

    /// Adds or replaces the slot of `new`'s kind, after checking `old`.
    /// A new passphrase's session key replaces the old one.
    async fn replace_slot(&self, at_rest: &AtRest, new: &Credential) -> Result<()> {
        let AtRest::Sealed(s) = at_rest else {
            return Err(not_encrypted("this"));
        };
        let created_at = timestamp::format_ms(BrowserClock.now_ms());
        let (slot, session) = new
            .new_slot(
                &self.identity.store_id,
                s.keys.master(),
                &created_at,
                &BrowserEntropy,
            )
            .await?;
        let txn = Txn::begin(self.db()?, &[META], true, Durability::Strict)?;
        let meta = txn.store(META)?;
        let keys = request(meta.get(&JsValue::from_str(META_KEYS_KEY))).await?;
        let slots = slots::replace(&slots::slots_from_js(&keys)?, slot);
        fire(meta.put_with_key(
            &slots::slots_to_js(&slots),
            &JsValue::from_str(META_KEYS_KEY),
        ))?;
        txn.commit().await?;
        if session.is_some() {
            self.keys.set_session(session);
        }
        Ok(())
    }

    /// Rewraps the master key under a new passphrase. No event is touched.
    pub(crate) async fn change_passphrase(&self, old: &Credential, new: &JsValue) -> Result<()> {
        let at_rest = self.sealed("changePassphrase()")?;
        Credential::check_new_passphrase(new, "newPassphrase")?;
        self.check_credential(&at_rest, old).await?;
        self.replace_slot(&at_rest, &Credential::Passphrase(new.clone()))
            .await
    }

    /// A new recovery secret; the previous one stops working.
    pub(crate) async fn export_recovery_key(&self) -> Result<Zeroizing<String>> {
        let at_rest = self.sealed("exportRecoveryKey()")?;
        let secret = RecoverySecret::generate(&BrowserEntropy);
        self.replace_slot(&at_rest, &Credential::Recovery(secret.clone()))
            .await?;
        Ok(secret.to_text())
    }

    /// Reads the ring and head in a readwrite transaction over `stores`.
    async fn ring_txn(&self, at_rest: &AtRest, stores: &[&str]) -> Result<(Txn, KeyRing, u64)> {
        let txn = Txn::begin(self.db()?, stores, true, Durability::Strict)?;
        let meta = txn.store(META)?;
        let ring = pending(meta.get(&JsValue::from_str(META_KEYRING_KEY)))?;
        let head = pending(meta.get(&JsValue::from_str(META_HEAD_KEY)))?;
        let ring = ring_from_js(at_rest, &ring.result().await?)?;
        let head = layout::head_from_js(&head.result().await?)?.unwrap_or_default();
        Ok((txn, ring, head.device_seq))
    }

    fn publish_ring(&self, at_rest: &AtRest, ring: KeyRing) {
        self.keys.update_ring(at_rest.with_ring(ring));
        self.keys.post(KeyEvent::RingChanged);
    }

    /// Starts a new data key for new records; old keys stay for old ones.
    pub(crate) async fn rotate_data_key(&self) -> Result<u32> {
        let at_rest = self.sealed("rotateDataKey()")?;
        let AtRest::Sealed(s) = &*at_rest else {
            return Err(not_encrypted("rotateDataKey()"));
        };
        let (txn, mut ring, head) = self.ring_txn(&at_rest, &[META]).await?;
        let id = ring.rotate(head + 1);
        put_ring(&txn.store(META)?, &s.keys, &ring)?;
        txn.commit().await?;
        self.publish_ring(&at_rest, ring);
        Ok(id)
    }

    /// The ring as it stands in the database.
    pub(crate) async fn key_info(&self) -> Result<(KeyRing, u64)> {
        let at_rest = self.sealed("keyInfo()")?;
        let txn = Txn::begin(self.db()?, &[META], false, self.durability)?;
        let meta = txn.store(META)?;
        let ring = pending(meta.get(&JsValue::from_str(META_KEYRING_KEY)))?;
        let head = pending(meta.get(&JsValue::from_str(META_HEAD_KEY)))?;
        let ring = ring_from_js(&at_rest, &ring.result().await?)?;
        let head = layout::head_from_js(&head.result().await?)?.unwrap_or_default();
        Ok((ring, head.device_seq))
    }

    /// Moves every record to the current key, a page per transaction, then
    /// retires the older keys. Resumes a run that was cut short.
    pub(crate) async fn reencrypt_all(&self, progress: &dyn Fn(u64, u64)) -> Result<Reencrypted> {
        let mut moved = 0u64;
        loop {
            let at_rest = self.sealed("reencryptAll()")?;
            let AtRest::Sealed(s) = &*at_rest else {
                return Err(not_encrypted("reencryptAll()"));
            };
            let (txn, mut ring, head) = self.ring_txn(&at_rest, &[META, PAGES]).await?;
            let meta = txn.store(META)?;
            let mut job = match ring.reencryption.clone() {
                Some(job) => job,
                None => {
                    // A fresh key unless the current one has room for the
                    // whole log as well as what it already holds.
                    if !ring.has_room(ring.current, head, head) {
                        ring.rotate(head + 1);
                    }
                    Reencryption {
                        first_target: ring.current,
                        target: ring.current,
                        next_device_seq: 1,
                    }
                }
            };
            let range = IdbKeyRange::lower_bound(&JsValue::from(job.next_device_seq as f64))
                .map_err(from_dom)?;
            let found: Array = request(txn.store(PAGES)?.get_all_with_key_and_limit(&range, 1))
                .await?
                .unchecked_into();
            let Some(value) = found.iter().next() else {
                // Every page has moved; so must every pulled event.
                drop(txn);
                let moved_remote = self
                    .reseal_remote(&at_rest, &ring, job.first_target)
                    .await?;
                moved += moved_remote;
                let (txn, mut ring, head) = self.ring_txn(&at_rest, &[META]).await?;
                let meta = txn.store(META)?;
                // Every page has moved: retire the older keys.
                let retired: Vec<u32> = ring
                    .keys
                    .iter()
                    .filter(|k| k.id < job.first_target && !k.retired)
                    .map(|k| k.id)
                    .collect();
                ring.retire_before(job.first_target);
                ring.reencryption = None;
                put_ring(&meta, &s.keys, &ring)?;
                txn.commit().await?;
                self.publish_ring(&at_rest, ring);
                progress(head, head);
                return Ok(Reencrypted {
                    key_id: job.target,
                    records: moved,
                    retired,
                });
            };
            let page = layout::page_from_js(&value)?;
            let (headers, _) = crate::crypto::sealed::split(&page.records);
            let settled = headers.iter().all(|r| r.key_id >= job.first_target);
            let count = headers.len() as u64;
            if !settled && !ring.has_room(job.target, head, count) {
                job.target = ring.rotate(head + 1);
            }
            let under = SealedAtRest {
                ring: ring.clone(),
                ..(**s).clone()
            };
            if !settled {
                let bytes = reseal(under, &page, job.target)?;
                let new_page = Page {
                    meta: page.meta.clone(),
                    records: bytes,
                };
                fire(txn.store(PAGES)?.put(&layout::page_to_js(&new_page)))?;
                if let Some(k) = ring.keys.iter_mut().find(|k| k.id == job.target) {
                    k.reencrypted += count;
                }
                moved += count;
            }
            ring.reencryption = Some(Reencryption {
                next_device_seq: page.meta.last_device_seq + 1,
                ..job
            });
            put_ring(&meta, &s.keys, &ring)?;
            txn.commit().await?;
            self.keys.update_ring(at_rest.with_ring(ring));
            progress(
                page.meta.last_device_seq,
                head.max(page.meta.last_device_seq),
            );
        }
    }
}

impl IdbStore {
    /// Re-encrypts pulled events still under a key before `first_target`
    /// under the ring's current key, 64 rows per transaction.
    async fn reseal_remote(
        &self,
        at_rest: &AtRest,
        ring: &KeyRing,
        first_target: u32,
    ) -> Result<u64> {
        use super::idb::layout::REMOTE;
        use super::sync::remote_rows;
        let AtRest::Sealed(s) = at_rest else {
            return Ok(0);
        };
        let under = SealedAtRest {
            ring: ring.clone(),
            ..(**s).clone()
        };
        let key = under.keys.data_key(under.ring.current);
        let mut moved = 0;
        let mut lo = 0.0;
        loop {
            let txn = Txn::begin(self.db()?, &[REMOTE], true, Durability::Strict)?;
            let store = txn.store(REMOTE)?;
            let range = IdbKeyRange::lower_bound(&JsValue::from(lo)).map_err(from_dom)?;
            let keys: Array = request(store.get_all_keys_with_key_and_limit(&range, 64))
                .await?
                .unchecked_into();
            let values: Array = request(store.get_all_with_key_and_limit(&range, 64))
                .await?
                .unchecked_into();
            if keys.length() == 0 {
                return Ok(moved);
            }
            let opener = AtRest::Sealed(Box::new(under.clone()));
            for (k, row) in keys.iter().zip(values.iter()) {
                lo = k.as_f64().unwrap_or(lo) + 1.0;
                let stored = remote_rows::records_of(&row)?;
                let settled = stored.iter().all(|(_, bytes)| {
                    let (headers, _) = crate::crypto::sealed::split(bytes);
                    headers.iter().all(|h| h.key_id >= first_target)
                });
                if settled {
                    continue;
                }
                let mut resealed = Vec::with_capacity(stored.len());
                for (seq, bytes) in &stored {
                    let mut out = Vec::new();
                    for r in &opener.read_checked(*seq, bytes)? {
                        let mut plain = Zeroizing::new(Vec::new());
                        page::encode_record(&mut plain, r);
                        under.seal_record(&mut out, &key, &r.envelope, &plain, &BrowserEntropy);
                    }
                    resealed.push(out);
                }
                remote_rows::with_records(&row, &resealed)?;
                fire(store.put_with_key(&row, &k))?;
                moved += stored.len() as u64;
            }
            txn.commit().await?;
        }
    }
}

/// Re-encrypts a page's records under key `target`, checking every hash
/// before and after.
fn reseal(mut keys: SealedAtRest, page: &Page, target: u32) -> Result<Vec<u8>> {
    let first = page.meta.first_device_seq;
    let records = AtRest::Sealed(Box::new(keys.clone())).read_checked(first, &page.records)?;
    keys.ring.current = target;
    let key = keys.keys.data_key(target);
    let mut out = Vec::with_capacity(page.records.len());
    let mut plain = Zeroizing::new(Vec::new());
    for r in &records {
        plain.clear();
        page::encode_record(&mut plain, r);
        keys.seal_record(&mut out, &key, &r.envelope, &plain, &BrowserEntropy);
    }
    let again = AtRest::Sealed(Box::new(keys)).read_checked(first, &out)?;
    if again.len() != records.len()
        || again
            .iter()
            .zip(&records)
            .any(|(a, b)| a.envelope.hash != b.envelope.hash)
    {
        return Err(Error::internal(format!(
            "re-encrypting the page at device_seq {first} changed its records; nothing was written"
        )));
    }
    Ok(out)
}
