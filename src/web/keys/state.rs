//! The unlocked keys of one open store, and its lock state.

use super::broadcast::{KeyChannel, KeyEvent};
use crate::at_rest::{AtRest, SealedAtRest};
use crate::error::{Error, ErrorCode, Result};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use wasm_bindgen::JsValue;

/// What the store holds in memory: `None` while locked. The keys are
/// zeroized when the last reference is dropped, so a lock never pulls keys
/// out from under a commit that is already encrypting.
#[derive(Default)]
pub(crate) struct KeyState {
    at_rest: RefCell<Option<Rc<AtRest>>>,
    encrypted: Cell<bool>,
    ring_stale: Cell<bool>,
    on_change: RefCell<Option<js_sys::Function>>,
    channel: RefCell<Option<KeyChannel>>,
    /// The session key of a passphrase unlock (a non-extractable
    /// `CryptoKey`), while unlocked: what a page hands its service worker.
    session: RefCell<Option<JsValue>>,
    /// Data keys imported into WebCrypto (non-extractable; they encrypt
    /// appends sealed ahead and decrypt the pages reads bring),
    /// by key id, while unlocked.
    web_data_keys: RefCell<HashMap<u32, JsValue>>,
}

impl KeyState {
    /// The state of a store that is open with `at_rest`.
    pub(crate) fn new(at_rest: AtRest) -> Rc<KeyState> {
        let state = Rc::new(KeyState::default());
        state.encrypted.set(at_rest.is_sealed());
        *state.at_rest.borrow_mut() = Some(Rc::new(at_rest));
        state
    }

    /// Joins the store's channel, so a lock anywhere locks here too.
    pub(crate) fn listen(self: &Rc<Self>, db_name: &str) {
        if !self.encrypted.get() {
            return;
        }
        let weak = Rc::downgrade(self);
        let channel = KeyChannel::open(db_name, move |event| {
            if let Some(state) = weak.upgrade() {
                match event {
                    KeyEvent::Locked => state.lock_here(),
                    KeyEvent::RingChanged => state.ring_stale.set(true),
                }
            }
        });
        *self.channel.borrow_mut() = channel;
    }

    /// Whether the store is encrypted.
    pub(crate) fn encrypted(&self) -> bool {
        self.encrypted.get()
    }

    /// Whether the keys are gone.
    pub(crate) fn locked(&self) -> bool {
        self.at_rest.borrow().is_none()
    }

    /// How records are kept, or ANNAL_LOCKED.
    pub(crate) fn current(&self) -> Result<Rc<AtRest>> {
        self.at_rest.borrow().clone().ok_or_else(|| {
            Error::new(
                ErrorCode::Locked,
                "the store is locked; unlock it with store.unlock(passphrase), or with \
                 { keyEncryptionKey } or { recoverySecret }",
            )
        })
    }

    /// Makes the next [`IdbStore::at_rest_for`] read the ring again.
    ///
    /// [`IdbStore::at_rest_for`]: crate::web::store::IdbStore
    pub(crate) fn mark_ring_stale(&self) {
        self.ring_stale.set(true);
    }

    /// Whether another context changed the ring since it was read.
    pub(crate) fn take_ring_stale(&self) -> bool {
        self.ring_stale.replace(false)
    }

    /// Installs unlocked keys (or a newer ring).
    pub(crate) fn set(&self, at_rest: AtRest) {
        let was_locked = self.locked();
        self.web_data_keys.borrow_mut().clear();
        *self.at_rest.borrow_mut() = Some(Rc::new(at_rest));
        if was_locked {
            self.notify(false);
        }
    }

    /// Remembers (or forgets) the session key of this unlock.
    pub(crate) fn set_session(&self, key: Option<JsValue>) {
        *self.session.borrow_mut() = key;
    }

    /// The session key, while unlocked with a passphrase or a session key.
    pub(crate) fn session(&self) -> Option<JsValue> {
        if self.locked() {
            return None;
        }
        self.session.borrow().clone()
    }

    /// Data key `id` of `s` as a WebCrypto key, imported on first use.
    pub(crate) async fn web_data_key(&self, s: &SealedAtRest, id: u32) -> Result<JsValue> {
        if let Some(key) = self.web_data_keys.borrow().get(&id) {
            return Ok(key.clone());
        }
        let key = super::webcrypto::import_data_key(&s.keys.data_key_bytes(id)[..]).await?;
        // A lock while importing wins: the key is not kept.
        if !self.locked() {
            self.web_data_keys.borrow_mut().insert(id, key.clone());
        }
        Ok(key)
    }

    /// Installs a newer ring read from the database, unless the store was
    /// locked meanwhile.
    pub(crate) fn update_ring(&self, at_rest: AtRest) {
        let mut current = self.at_rest.borrow_mut();
        if current.is_some() {
            *current = Some(Rc::new(at_rest));
        }
    }

    /// Locks this context only.
    pub(crate) fn lock_here(&self) {
        self.session.borrow_mut().take();
        self.web_data_keys.borrow_mut().clear();
        if self.encrypted.get() && self.at_rest.borrow_mut().take().is_some() {
            self.notify(true);
        }
    }

    /// Locks every context of the store.
    pub(crate) fn lock_everywhere(&self) {
        self.lock_here();
        self.post(KeyEvent::Locked);
    }

    /// Tells other contexts.
    pub(crate) fn post(&self, event: KeyEvent) {
        if let Some(c) = &*self.channel.borrow() {
            c.post(event);
        }
    }

    /// Sets the function called with `true` on lock and `false` on unlock.
    pub(crate) fn on_change(&self, callback: Option<js_sys::Function>) {
        *self.on_change.borrow_mut() = callback;
    }

    fn notify(&self, locked: bool) {
        let callback = self.on_change.borrow().clone();
        if let Some(f) = callback {
            // A throwing listener must not break locking.
            let _ = f.call1(&JsValue::NULL, &JsValue::from(locked));
        }
    }

    /// Forgets keys and listeners when the store closes.
    pub(crate) fn close(&self) {
        self.at_rest.borrow_mut().take();
        self.session.borrow_mut().take();
        self.channel.borrow_mut().take();
        self.on_change.borrow_mut().take();
    }
}
