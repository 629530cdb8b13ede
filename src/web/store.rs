//! An open IndexedDB-backed store: its connection, identity and lifecycle.

use super::group_commit::GroupCommit;
use super::idb::layout::{self, META, META_HEAD_KEY, META_STORE_KEY};
use super::idb::open;
use super::idb::txn::{fire, request, Durability, Txn};
use super::options::OpenOptions;
use super::platform::{BrowserClock, BrowserEntropy};
use crate::clock::Clock;
use crate::error::{Error, ErrorCode, Result};
use crate::state::{Head, Identity};
use crate::timestamp;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use web_sys::IdbDatabase;

/// An open store.
pub(crate) struct IdbStore {
    pub(crate) name: String,
    pub(crate) identity: Identity,
    pub(crate) durability: Durability,
    pub(crate) group: GroupCommit,
    db: IdbDatabase,
    closed: Rc<RefCell<Option<Error>>>,
    on_version_change: RefCell<Option<Closure<dyn FnMut()>>>,
}

impl IdbStore {
    /// Opens or creates the store described by `options`.
    pub(crate) async fn open(options: OpenOptions) -> Result<Rc<IdbStore>> {
        let db = open::open(&options.name).await?;
        let identity = match load_or_create_identity(&db, &options).await {
            Ok(identity) => identity,
            Err(e) => {
                db.close();
                return Err(e);
            }
        };
        let store = Rc::new(IdbStore {
            name: options.name,
            identity,
            durability: options.durability,
            group: GroupCommit::default(),
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
    }

    /// The device head, read in its own transaction.
    pub(crate) async fn head(&self) -> Result<Head> {
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

/// Reads the store's identity, creating it (with a fresh device id) on
/// first open. Two contexts opening a new store at once race on `add`; the
/// loser reads the winner's identity.
async fn load_or_create_identity(db: &IdbDatabase, options: &OpenOptions) -> Result<Identity> {
    for _ in 0..2 {
        let txn = Txn::begin(db, &[META], true, Durability::Strict)?;
        let meta = txn.store(META)?;
        let existing = request(meta.get(&JsValue::from_str(META_STORE_KEY))).await?;
        if !existing.is_undefined() {
            let identity = layout::identity_from_js(&existing)?;
            txn.commit().await?;
            return check_owner(identity, options);
        }
        let clock = BrowserClock;
        let tenant = options.tenant_id.as_deref().unwrap_or("default");
        let identity = Identity::generate(tenant, &options.user_id, &clock, &BrowserEntropy);
        let created_at = timestamp::format_ms(clock.now_ms());
        fire(meta.add_with_key(
            &layout::identity_to_js(&identity, &created_at),
            &JsValue::from_str(META_STORE_KEY),
        ))?;
        fire(meta.add_with_key(
            &layout::head_to_js(&Head::genesis()),
            &JsValue::from_str(META_HEAD_KEY),
        ))?;
        match txn.commit().await {
            Ok(()) => return Ok(identity),
            // Another context created it first: read theirs.
            Err(e) if e.code == ErrorCode::Storage => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::storage(
        "could not create the store's identity; retry opening it",
    ))
}

fn check_owner(identity: Identity, options: &OpenOptions) -> Result<Identity> {
    if identity.user_id != options.user_id {
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
