//! An open IndexedDB-backed store: its connection, identity and lifecycle.

use super::group_commit::GroupCommit;
use super::idb::layout::{
    self, StoreKind, AGGREGATES, META, META_HEAD_KEY, META_KEYRING_KEY, META_KEYS_KEY,
    META_STORE_KEY,
};
use super::idb::open;
use super::idb::txn::{fire, pending, request, Durability, Txn};
use super::keys::credential::Credential;
use super::keys::slots;
use super::keys::state::KeyState;
use super::options::OpenOptions;
use super::platform::{BrowserClock, BrowserEntropy};
use crate::at_rest::{AtRest, SealedAtRest};
use crate::clock::Clock;
use crate::crypto::keyring::{KeyRing, DEFAULT_MAX_RECORDS_PER_KEY};
use crate::crypto::keys::{KeySet, MasterKey};
use crate::error::{Error, ErrorCode, Result};
use crate::state::{Head, Identity};
use crate::timestamp;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use web_sys::IdbDatabase;
use web_sys::IdbObjectStore;

/// An open store.
pub(crate) struct IdbStore {
    pub(crate) name: String,
    pub(crate) identity: Identity,
    pub(crate) durability: Durability,
    pub(crate) group: GroupCommit,
    /// What the last commit of this context left (see `WriteCache`).
    pub(crate) write_cache: RefCell<Option<super::write_cache::WriteCache>>,
    pub(crate) keys: Rc<KeyState>,
    pub(crate) sync: super::sync::run::SyncHandle,
    /// `Some(blind_indexes)` for encrypted stores.
    pub(crate) blind_indexes: Option<bool>,
    /// Whether the `aggregates` object store held records when the store
    /// was opened: only stores upgraded from before layout 3 have any, and
    /// nothing adds them since, so appends to others never look there.
    pub(crate) has_legacy_aggregates: bool,
    /// Whether appends read unseen aggregates' heads as one range (see
    /// `aggregate_head`; with blind indexes only for many, see
    /// `state_reads`): true until a range holds too many other heads, as
    /// random or blinded ids make it do.
    pub(crate) head_ranges: Cell<bool>,
    /// Whether an append may presume an aggregate it has not seen has no
    /// events (see `seal_ahead`): cleared when one had, set again when an
    /// ordinary read finds every unseen aggregate new.
    pub(crate) presume_new: Cell<bool>,
    db: IdbDatabase,
    closed: Rc<RefCell<Option<Error>>>,
    on_version_change: RefCell<Option<Closure<dyn FnMut()>>>,
}

impl IdbStore {
    /// Opens or creates the store described by `options`.
    pub(crate) async fn open(
        options: OpenOptions,
        credential: Option<Credential>,
    ) -> Result<Rc<IdbStore>> {
        let db = open::open(&options.name, options.user_id.is_some()).await?;
        let (identity, at_rest, session, legacy) =
            match load_or_create(&db, &options, credential).await {
                Ok(loaded) => loaded,
                Err(e) => {
                    db.close();
                    return Err(e);
                }
            };
        let blind_indexes = match &at_rest {
            AtRest::Sealed(s) => Some(s.blind_indexes),
            AtRest::Plain => None,
        };
        let keys = KeyState::new(at_rest);
        keys.set_session(session);
        keys.listen(&open::db_name(&options.name));
        let store = Rc::new(IdbStore {
            name: options.name,
            identity,
            durability: options.durability,
            group: GroupCommit::default(),
            write_cache: RefCell::default(),
            keys,
            sync: Default::default(),
            blind_indexes,
            has_legacy_aggregates: legacy,
            head_ranges: Cell::new(true),
            presume_new: Cell::new(true),
            db,
            closed: Rc::default(),
            on_version_change: RefCell::new(None),
        });
        store.listen_for_version_change();
        Ok(store)
    }

    /// A newer version of the app (in another tab or a new service worker)
    /// wants to upgrade or delete the database. Close at once so it is not
    /// blocked; later calls fail with ANNAL_CLOSED and say to reload.
    fn listen_for_version_change(&self) {
        let db = self.db.clone();
        let closed = self.closed.clone();
        let closure = Closure::<dyn FnMut()>::new(move || {
            db.close();
            closed.borrow_mut().get_or_insert_with(|| {
                Error::new(
                    ErrorCode::Closed,
                    "the store was closed because a newer version of this app, or EventStore.destroy(), \
                     needs its database; reload the page to continue",
                )
            });
        });
        self.db
            .set_onversionchange(Some(closure.as_ref().unchecked_ref()));
        // The browser fires `close` when it shuts a connection itself, for
        // example when the user clears site data.
        self.db.set_onclose(Some(closure.as_ref().unchecked_ref()));
        *self.on_version_change.borrow_mut() = Some(closure);
    }

    /// The connection, or ANNAL_CLOSED.
    pub(crate) fn db(&self) -> Result<&IdbDatabase> {
        match &*self.closed.borrow() {
            Some(e) => Err(e.clone()),
            None => Ok(&self.db),
        }
    }

    /// Closes the store. Appends already acknowledged are durable; later
    /// calls fail with ANNAL_CLOSED.
    pub(crate) fn close(&self) {
        self.closed.borrow_mut().get_or_insert_with(|| {
            Error::new(
                ErrorCode::Closed,
                "the store is closed; open it again with EventStore.open()",
            )
        });
        self.db.set_onversionchange(None);
        self.db.set_onclose(None);
        self.db.close();
        self.on_version_change.borrow_mut().take();
        self.keys.close();
    }

    /// How records are kept: ANNAL_CLOSED or ANNAL_LOCKED if they cannot be
    /// read or written now.
    pub(crate) fn at_rest(&self) -> Result<Rc<AtRest>> {
        self.db()?;
        self.keys.current()
    }

    /// Like [`Self::at_rest`], but first reads the key ring again if
    /// another context changed it, or if `bytes` name a key this context
    /// has not seen yet.
    pub(crate) async fn at_rest_for(&self, bytes: Option<&[u8]>) -> Result<Rc<AtRest>> {
        let at = self.at_rest()?;
        let newer = bytes.is_some_and(|b| at.names_newer_key(b));
        if !(self.keys.take_ring_stale() || newer) {
            return Ok(at);
        }
        let txn = Txn::begin(self.db()?, &[META], false, self.durability)?;
        let v = request(txn.store(META)?.get(&JsValue::from_str(META_KEYRING_KEY))).await?;
        let ring = ring_from_js(&at, &v)?;
        self.keys.update_ring(at.with_ring(ring));
        self.keys.current()
    }

    /// The device head, read in its own transaction.
    pub(crate) async fn head(&self) -> Result<Head> {
        self.at_rest()?;
        self.read_head().await
    }

    /// The head as stored, without checking its MAC: what a locked store
    /// can tell (how many events it holds).
    pub(crate) async fn read_head(&self) -> Result<Head> {
        let txn = Txn::begin(self.db()?, &[META], false, self.durability)?;
        let head = request(txn.store(META)?.get(&JsValue::from_str(META_HEAD_KEY))).await?;
        Ok(layout::head_from_js(&head)?.unwrap_or_default())
    }
}

impl Drop for IdbStore {
    fn drop(&mut self) {
        self.close();
    }
}

/// Reads the store's identity and unlocks it, or creates it (with a fresh
/// device id, and keys if a credential is given) on first open.
async fn load_or_create(
    db: &IdbDatabase,
    options: &OpenOptions,
    credential: Option<Credential>,
) -> Result<(Identity, AtRest, Option<JsValue>, bool)> {
    for _ in 0..2 {
        if let Some((identity, kind, legacy)) = read_identity(db).await? {
            let identity = check_owner(identity, options)?;
            let (at_rest, session) =
                open_existing(db, options, &identity, kind, credential).await?;
            return Ok((identity, at_rest, session, legacy));
        }
        let Some(user_id) = options.user_id.as_deref() else {
            return Err(open::not_created(&options.name));
        };
        let clock = BrowserClock;
        let tenant = options.tenant_id.as_deref().unwrap_or("default");
        let identity = Identity::generate(tenant, user_id, &clock, &BrowserEntropy);
        let created_at = timestamp::format_ms(clock.now_ms());
        let (kind, at_rest, slot, session) = match &credential {
            None => {
                if options.blind_indexes.is_some() || options.max_records_per_key.is_some() {
                    return Err(Error::validation(
                        "blindIndexes",
                        "blindIndexes and maxRecordsPerKey apply to encrypted stores; \
                         give a passphrase or keyEncryptionKey to create one",
                    ));
                }
                (StoreKind::Plain, AtRest::Plain, None, None)
            }
            Some(c) => {
                match c {
                    Credential::Passphrase(p) => Credential::check_new_passphrase(p, "passphrase")?,
                    Credential::Recovery(_) => {
                        return Err(Error::validation(
                            "recoverySecret",
                            format!(
                                "store {:?} does not exist yet; create it with a passphrase or \
                                 keyEncryptionKey, then call exportRecoveryKey()",
                                options.name
                            ),
                        ))
                    }
                    Credential::Key(_) | Credential::Session(_) => {}
                }
                let master = MasterKey::generate(&BrowserEntropy);
                let (slot, session) = c
                    .new_slot(&identity.store_id, &master, &created_at, &BrowserEntropy)
                    .await?;
                let blind_indexes = options.blind_indexes.unwrap_or(true);
                let at_rest = AtRest::Sealed(Box::new(SealedAtRest {
                    keys: KeySet::new(&identity.store_id, master),
                    blind_indexes,
                    ring: KeyRing::new(
                        options
                            .max_records_per_key
                            .unwrap_or(DEFAULT_MAX_RECORDS_PER_KEY),
                    ),
                }));
                (
                    StoreKind::Encrypted { blind_indexes },
                    at_rest,
                    Some(slot),
                    session,
                )
            }
        };
        let txn = Txn::begin(db, &[META], true, Durability::Strict)?;
        let meta = txn.store(META)?;
        let existing = request(meta.get(&JsValue::from_str(META_STORE_KEY))).await?;
        if !existing.is_undefined() {
            // Another context created it meanwhile: open theirs.
            txn.commit().await?;
            continue;
        }
        fire(meta.add_with_key(
            &layout::identity_to_js(&identity, &created_at, kind),
            &JsValue::from_str(META_STORE_KEY),
        ))?;
        let genesis = Head::genesis();
        fire(meta.add_with_key(
            &layout::head_to_js(&genesis, at_rest.head_mac(&genesis).as_deref()),
            &JsValue::from_str(META_HEAD_KEY),
        ))?;
        if let (Some(slot), AtRest::Sealed(s)) = (slot, &at_rest) {
            fire(meta.add_with_key(
                &slots::slots_to_js(&[slot]),
                &JsValue::from_str(META_KEYS_KEY),
            ))?;
            put_ring(&meta, &s.keys, &s.ring)?;
        }
        match txn.commit().await {
            Ok(()) => return Ok((identity, at_rest, session, false)),
            // Another context created it first: read theirs.
            Err(e) if e.code == ErrorCode::Storage => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::storage(
        "could not create the store's identity; retry opening it",
    ))
}

/// The store's identity and kind, and whether it has `aggregates` records
/// from before layout 3.
async fn read_identity(db: &IdbDatabase) -> Result<Option<(Identity, StoreKind, bool)>> {
    let txn = Txn::begin(db, &[META, AGGREGATES], false, Durability::Strict)?;
    let existing = pending(txn.store(META)?.get(&JsValue::from_str(META_STORE_KEY)))?;
    let legacy = pending(txn.store(AGGREGATES)?.count())?;
    let existing = existing.result().await?;
    let legacy = legacy.result().await?.as_f64().is_some_and(|n| n > 0.0);
    if existing.is_undefined() {
        return Ok(None);
    }
    let (identity, kind) = layout::identity_from_js(&existing)?;
    Ok(Some((identity, kind, legacy)))
}

async fn open_existing(
    db: &IdbDatabase,
    options: &OpenOptions,
    identity: &Identity,
    kind: StoreKind,
    credential: Option<Credential>,
) -> Result<(AtRest, Option<JsValue>)> {
    match kind {
        StoreKind::Plain => {
            if credential.is_some() || options.blind_indexes.is_some() {
                return Err(Error::validation(
                    "options",
                    format!(
                        "store {:?} is not encrypted, so it takes no passphrase, keyEncryptionKey, \
                         recoverySecret or blindIndexes; an existing store cannot be encrypted in \
                         place: create an encrypted store under a new name",
                        options.name
                    ),
                ));
            }
            Ok((AtRest::Plain, None))
        }
        StoreKind::Encrypted { blind_indexes } => {
            if options.blind_indexes.is_some_and(|b| b != blind_indexes) {
                return Err(Error::validation(
                    "blindIndexes",
                    format!("store {:?} was created with blindIndexes: {blind_indexes}, which cannot change", options.name),
                ));
            }
            let Some(credential) = credential else {
                return Err(Error::new(
                    ErrorCode::Locked,
                    format!(
                        "store {:?} is encrypted; open it with {{ passphrase }}, {{ keyEncryptionKey }} \
                         or {{ recoverySecret }} among the open() options",
                        options.name
                    ),
                ));
            };
            unlock(db, &identity.store_id, blind_indexes, &credential).await
        }
    }
}

/// Unwraps the master key with `credential` and reads the key ring; with
/// the session key of a passphrase unlock.
pub(crate) async fn unlock(
    db: &IdbDatabase,
    store_id: &str,
    blind_indexes: bool,
    credential: &Credential,
) -> Result<(AtRest, Option<JsValue>)> {
    let txn = Txn::begin(db, &[META], false, Durability::Strict)?;
    let meta = txn.store(META)?;
    let keys = pending(meta.get(&JsValue::from_str(META_KEYS_KEY)))?;
    let ring = pending(meta.get(&JsValue::from_str(META_KEYRING_KEY)))?;
    let keys = keys.result().await?;
    let ring = ring.result().await?;
    let slots = slots::slots_from_js(&keys)?;
    let (master, session) = credential.unwrap_with_session(store_id, &slots).await?;
    let at_rest = AtRest::Sealed(Box::new(SealedAtRest {
        keys: KeySet::new(store_id, master),
        blind_indexes,
        ring: KeyRing::new(DEFAULT_MAX_RECORDS_PER_KEY),
    }));
    let ring = ring_from_js(&at_rest, &ring)?;
    Ok((at_rest.with_ring(ring), session))
}

/// Writes the key ring with its MAC.
pub(crate) fn put_ring(meta: &IdbObjectStore, keys: &KeySet, ring: &KeyRing) -> Result<()> {
    let text = ring.to_json();
    let mac = keys.head_mac().mac_keyring(keys.store_id(), &text);
    fire(meta.put_with_key(
        &layout::keyring_to_js(&text, &mac),
        &JsValue::from_str(META_KEYRING_KEY),
    ))
}

/// Reads the key ring and checks its MAC with the keys of `at_rest`.
pub(crate) fn ring_from_js(at_rest: &AtRest, v: &JsValue) -> Result<KeyRing> {
    let AtRest::Sealed(s) = at_rest else {
        return Err(Error::internal("a plain store has no key ring"));
    };
    let bad = |why: &str| {
        Error::new(
            ErrorCode::Tampered,
            format!("the store's key ring {why}; restore the store from the server or a backup"),
        )
    };
    if v.is_undefined() {
        return Err(bad("is missing"));
    }
    let (text, mac) = layout::keyring_from_js(v)?;
    if !s
        .keys
        .head_mac()
        .check_keyring(s.keys.store_id(), &text, &mac)
    {
        return Err(bad("was modified (its MAC does not match)"));
    }
    KeyRing::from_json(&text).map_err(|e| bad(&format!("cannot be read ({e})")))
}

fn check_owner(identity: Identity, options: &OpenOptions) -> Result<Identity> {
    if options
        .user_id
        .as_ref()
        .is_some_and(|u| *u != identity.user_id)
    {
        return Err(Error::validation(
            "userId",
            format!(
                "store {:?} belongs to another user; each user needs a store of their own, \
                 e.g. EventStore.open({{ name: `diary-${{userId}}`, userId }})",
                options.name
            ),
        ));
    }
    if let Some(tenant) = &options.tenant_id {
        if *tenant != identity.tenant_id {
            return Err(Error::validation(
                "tenantId",
                format!(
                    "store {:?} belongs to tenant {:?}, not {tenant:?}; open a store of its own for each tenant",
                    options.name, identity.tenant_id
                ),
            ));
        }
    }
    Ok(identity)
}

/// Deletes the database of store `name`.
pub(crate) async fn destroy(name: &str) -> Result<()> {
    open::delete(name).await.map_err(|e| Error {
        message: format!("could not delete store {name:?}: {}", e.message),
        ..e
    })
}
