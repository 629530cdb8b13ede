//! Key slots: the master key wrapped once per credential kind, in the
//! `meta` record `"keys"` (docs/FORMAT.md §8.4.1).

use super::credential::Credential;
use super::webcrypto;
use crate::crypto::keys::MasterKey;
use crate::entropy::Entropy;
use crate::error::{Error, ErrorCode, Result};
use js_sys::{Array, Object, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};

/// `format` of the `"keys"` record.
pub(crate) const KEYS_FORMAT: &str = "annal-keys/1";
/// PBKDF2 iterations for new passphrase slots (OWASP 2023 for SHA-256).
pub(crate) const PBKDF2_ITERATIONS: u32 = 600_000;
/// The fewest iterations a stored slot may ask for.
const MIN_ITERATIONS: u32 = 600_000;
const KDF: &str = "PBKDF2-HMAC-SHA256";

/// One wrapped copy of the master key.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub(crate) kind: String,
    pub(crate) iv: Vec<u8>,
    pub(crate) wrapped: Vec<u8>,
    pub(crate) created_at: String,
    /// PBKDF2 `(iterations, salt)` of passphrase slots.
    pub(crate) pbkdf2: Option<(u32, Vec<u8>)>,
}

fn aad(store_id: &str, kind: &str) -> Vec<u8> {
    let mut aad = b"annal/1 master key\0".to_vec();
    aad.extend_from_slice(store_id.as_bytes());
    aad.push(0);
    aad.extend_from_slice(kind.as_bytes());
    aad
}

fn random(entropy: &dyn Entropy, n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    entropy.fill(&mut out);
    out
}

impl Credential {
    /// The KEK for `slot` (which carries the passphrase's salt and
    /// iterations), or for a new slot when `slot` is `None`.
    async fn kek(&self, store_id: &str, pbkdf2: Option<&(u32, Vec<u8>)>) -> Result<JsValue> {
        match self {
            Credential::Passphrase(p) => {
                let (iterations, salt) =
                    pbkdf2.ok_or_else(|| Error::internal("no PBKDF2 parameters"))?;
                webcrypto::derive_kek(p, salt, *iterations).await
            }
            Credential::Key(k) | Credential::Session(k) => Ok(k.clone()),
            Credential::Recovery(secret) => {
                webcrypto::import_kek(secret.kek(store_id).as_ref()).await
            }
        }
    }

    /// A new slot wrapping `master` under this credential, and for a
    /// passphrase the session key that opens it (see [`Credential::Session`]).
    pub(crate) async fn new_slot(
        &self,
        store_id: &str,
        master: &MasterKey,
        created_at: &str,
        entropy: &dyn Entropy,
    ) -> Result<(Slot, Option<JsValue>)> {
        if matches!(self, Credential::Session(_)) {
            return Err(Error::validation(
                "sessionKey",
                "a sessionKey only unlocks; create or change a passphrase with the passphrase itself",
            ));
        }
        let pbkdf2 = matches!(self, Credential::Passphrase(_))
            .then(|| (PBKDF2_ITERATIONS, random(entropy, 16)));
        let kek = self.kek(store_id, pbkdf2.as_ref()).await?;
        let iv = random(entropy, 12);
        let wrapped = webcrypto::wrap(&kek, &iv, &aad(store_id, self.kind()), master).await?;
        let slot = Slot {
            kind: self.kind().to_string(),
            iv,
            wrapped,
            created_at: created_at.to_string(),
            pbkdf2,
        };
        let session = matches!(self, Credential::Passphrase(_)).then_some(kek);
        Ok((slot, session))
    }

    /// Unwraps the master key from the slot of this credential's kind.
    pub(crate) async fn unwrap(&self, store_id: &str, slots: &[Slot]) -> Result<MasterKey> {
        Ok(self.unwrap_with_session(store_id, slots).await?.0)
    }

    /// As [`Credential::unwrap`], with the session key of a passphrase or
    /// session credential, so PBKDF2 runs once.
    pub(crate) async fn unwrap_with_session(
        &self,
        store_id: &str,
        slots: &[Slot],
    ) -> Result<(MasterKey, Option<JsValue>)> {
        let kind = self.kind();
        let Some(slot) = slots.iter().find(|s| s.kind == kind) else {
            let have: Vec<&str> = slots.iter().map(|s| s.kind.as_str()).collect();
            return Err(Error::new(
                ErrorCode::BadKey,
                format!(
                    "this store has no {kind} slot; unlock it with one of: {}",
                    have.join(", ")
                ),
            ));
        };
        let kek = self.kek(store_id, slot.pbkdf2.as_ref()).await?;
        let master = webcrypto::unwrap(&kek, &slot.iv, &aad(store_id, kind), &slot.wrapped)
            .await?
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::BadKey,
                    match self {
                        Credential::Passphrase(_) => "wrong passphrase: it does not unlock this store; try again, or open it with its recoverySecret",
                        Credential::Key(_) => "wrong keyEncryptionKey: it does not unlock this store",
                        Credential::Recovery(_) => "wrong recovery secret: it does not unlock this store (it may have been replaced by a newer exportRecoveryKey())",
                        Credential::Session(_) => "the session key no longer unlocks this store (its passphrase was changed); unlock the store in a page again",
                    },
                )
            })?;
        let session = kind == "passphrase";
        Ok((master, session.then_some(kek)))
    }
}

fn set(obj: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(obj, &JsValue::from_str(key), value);
}

fn get(obj: &JsValue, key: &str) -> Option<JsValue> {
    Reflect::get(obj, &JsValue::from_str(key))
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}

fn corrupt(what: &str) -> Error {
    Error::new(
        ErrorCode::Tampered,
        format!("the store's key slots are damaged ({what}); open it on another device or restore from the server"),
    )
}

fn bytes(obj: &JsValue, key: &str, len: Option<usize>) -> Result<Vec<u8>> {
    let v = get(obj, key).ok_or_else(|| corrupt(key))?;
    let b: &Uint8Array = v.dyn_ref().ok_or_else(|| corrupt(key))?;
    let out = b.to_vec();
    if len.is_some_and(|n| n != out.len()) {
        return Err(corrupt(key));
    }
    Ok(out)
}

/// The `"keys"` record.
pub(crate) fn slots_to_js(slots: &[Slot]) -> JsValue {
    let list: Array = slots
        .iter()
        .map(|s| {
            let o = Object::new();
            set(&o, "kind", &JsValue::from_str(&s.kind));
            set(&o, "iv", &Uint8Array::from(s.iv.as_slice()));
            set(&o, "wrapped", &Uint8Array::from(s.wrapped.as_slice()));
            set(&o, "created_at", &JsValue::from_str(&s.created_at));
            if let Some((iterations, salt)) = &s.pbkdf2 {
                set(&o, "kdf", &JsValue::from_str(KDF));
                set(&o, "iterations", &JsValue::from(*iterations));
                set(&o, "salt", &Uint8Array::from(salt.as_slice()));
            }
            JsValue::from(o)
        })
        .collect();
    let o = Object::new();
    set(&o, "format", &JsValue::from_str(KEYS_FORMAT));
    set(&o, "slots", &list);
    o.into()
}

pub(crate) fn slots_from_js(v: &JsValue) -> Result<Vec<Slot>> {
    if get(v, "format").and_then(|f| f.as_string()).as_deref() != Some(KEYS_FORMAT) {
        return Err(corrupt("format"));
    }
    let list = get(v, "slots").ok_or_else(|| corrupt("slots"))?;
    let list: &Array = list.dyn_ref().ok_or_else(|| corrupt("slots"))?;
    list.iter()
        .map(|s| {
            let kind = get(&s, "kind")
                .and_then(|k| k.as_string())
                .ok_or_else(|| corrupt("kind"))?;
            let pbkdf2 = if kind == "passphrase" {
                if get(&s, "kdf").and_then(|k| k.as_string()).as_deref() != Some(KDF) {
                    return Err(corrupt("kdf"));
                }
                let iterations = get(&s, "iterations")
                    .and_then(|i| i.as_f64())
                    .filter(|i| i.fract() == 0.0 && *i >= f64::from(MIN_ITERATIONS) && *i <= 1e8)
                    .ok_or_else(|| corrupt("iterations"))? as u32;
                Some((iterations, bytes(&s, "salt", Some(16))?))
            } else {
                None
            };
            Ok(Slot {
                iv: bytes(&s, "iv", Some(12))?,
                wrapped: bytes(&s, "wrapped", Some(48))?,
                created_at: get(&s, "created_at")
                    .and_then(|c| c.as_string())
                    .unwrap_or_default(),
                kind,
                pbkdf2,
            })
        })
        .collect()
}

/// `slots` with `slot` replacing any slot of its kind.
pub(crate) fn replace(slots: &[Slot], slot: Slot) -> Vec<Slot> {
    let mut out: Vec<Slot> = slots
        .iter()
        .filter(|s| s.kind != slot.kind)
        .cloned()
        .collect();
    out.push(slot);
    out
}
