//! Opening, upgrading and deleting databases.

use super::errors::from_dom;
use super::layout::{ALL_STORES, DB_PREFIX, LAYOUT_VERSION};
use super::migrations;
use super::txn::request;
use crate::error::{Error, ErrorCode, Result};
use js_sys::Reflect;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{IdbDatabase, IdbFactory, IdbOpenDbRequest, IdbTransaction, IdbVersionChangeEvent};

/// The IndexedDB factory of this context: window, worker or service worker.
fn factory() -> Result<IdbFactory> {
    Reflect::get(&js_sys::global(), &JsValue::from_str("indexedDB"))
        .ok()
        .and_then(|f| f.dyn_into::<IdbFactory>().ok())
        .ok_or_else(|| {
            Error::storage(
                "IndexedDB is not available in this context (private browsing in some browsers disables it); \
                 annal needs IndexedDB to store events",
            )
        })
}

/// The database name of store `name`.
pub(crate) fn db_name(name: &str) -> String {
    format!("{DB_PREFIX}{name}")
}

/// Opens (upgrading) the database of store `name`; creates it only with
/// `create`, else a missing store is `ANNAL_VALIDATION` and nothing is left
/// behind (the aborted first upgrade leaves no database).
pub(crate) async fn open(name: &str, create: bool) -> Result<IdbDatabase> {
    let full = db_name(name);
    let req: IdbOpenDbRequest = factory()?
        .open_with_u32(&full, LAYOUT_VERSION)
        .map_err(from_dom)?;

    // An error inside the upgrade aborts the versionchange transaction; the
    // open request then fails and the error is reported from here.
    let upgrade_error: Rc<RefCell<Option<Error>>> = Rc::default();
    let on_upgrade = {
        let upgrade_error = upgrade_error.clone();
        let req = req.clone();
        let name = name.to_string();
        Closure::<dyn FnMut(IdbVersionChangeEvent)>::new(move |event: IdbVersionChangeEvent| {
            let result = (|| -> Result<()> {
                let db: IdbDatabase = req.result().map_err(from_dom)?.unchecked_into();
                let tx: IdbTransaction = req
                    .transaction()
                    .ok_or_else(|| Error::internal("upgrade without a transaction"))?;
                if event.old_version() == 0.0 && !create {
                    let _ = tx.abort();
                    return Err(not_created(&name));
                }
                // Someone else's database under our name: leave it as it was.
                if let Some(missing) = missing_store(&db).filter(|_| event.old_version() > 0.0) {
                    let _ = tx.abort();
                    return Err(foreign(&db_name(&name), missing));
                }
                migrations::upgrade(&db, &tx, event.old_version() as u32).inspect_err(|_| {
                    let _ = tx.abort();
                })
            })();
            if let Err(e) = result {
                *upgrade_error.borrow_mut() = Some(e);
            }
        })
    };
    req.set_onupgradeneeded(Some(on_upgrade.as_ref().unchecked_ref()));

    let opened = request(Ok(req.clone().into())).await;
    req.set_onupgradeneeded(None);
    drop(on_upgrade);

    if let Some(e) = upgrade_error.borrow_mut().take() {
        return Err(e);
    }
    let db: IdbDatabase = match opened {
        Ok(db) => db.unchecked_into(),
        Err(e) if e.code == ErrorCode::Schema => return Err(newer_layout(&full).await),
        Err(e) => return Err(e),
    };
    if let Some(missing) = missing_store(&db) {
        db.close();
        return Err(foreign(&full, missing));
    }
    Ok(db)
}

/// The first object store of layout 1 that `db` lacks.
fn missing_store(db: &IdbDatabase) -> Option<&'static str> {
    let names = db.object_store_names();
    ALL_STORES.into_iter().find(|s| !names.contains(s))
}

/// The error for a database of that name that is not an annal store.
fn foreign(full: &str, missing: &str) -> Error {
    Error::new(
        ErrorCode::Schema,
        format!(
            "database {full:?} exists but is not an annal store (it has no {missing:?} object store); \
             choose another store name"
        ),
    )
}

/// The error for opening a store that does not exist without what creates it.
pub(crate) fn not_created(name: &str) -> Error {
    Error::validation(
        "userId",
        format!("store {name:?} does not exist yet; creating it needs the userId it belongs to"),
    )
}

/// The error for a database whose layout is newer than this annal's.
async fn newer_layout(full: &str) -> Error {
    let version = match factory().and_then(|f| f.open(full).map_err(from_dom)) {
        Ok(req) => match request(Ok(req.into())).await {
            Ok(db) => {
                let db: IdbDatabase = db.unchecked_into();
                let v = db.version();
                db.close();
                format!("{v}")
            }
            Err(_) => "unknown".into(),
        },
        Err(_) => "unknown".into(),
    };
    Error::new(
        ErrorCode::Schema,
        format!(
            "database {full:?} has layout version {version}, written by a newer annal; this annal reads \
             layout {LAYOUT_VERSION} and will not downgrade it. Upgrade the app (reload to get the new version)"
        ),
    )
}

/// Deletes the database of store `name`. Open connections in other tabs
/// are asked to close; the returned future waits until they have.
pub(crate) async fn delete(name: &str) -> Result<()> {
    let req = factory()?
        .delete_database(&db_name(name))
        .map_err(from_dom)?;
    request(Ok(req.into())).await.map(|_| ())
}
