//! What a person or an app presents to unlock a store: a passphrase, a
//! WebCrypto key-encryption key, a recovery secret, or the session key of a
//! passphrase unlock handed over by a page (to its service worker).

use super::webcrypto;
use crate::crypto::recovery::{RecoveryError, RecoverySecret};
use crate::error::{Error, Result};
use js_sys::{Object, Reflect};
use wasm_bindgen::JsValue;

/// Shortest passphrase accepted for a new passphrase slot.
pub(crate) const MIN_PASSPHRASE_CHARS: usize = 8;
/// Longest passphrase accepted.
pub(crate) const MAX_PASSPHRASE_CHARS: usize = 1024;

/// The option names that carry a credential.
pub(crate) const FIELDS: [&str; 4] = [
    "passphrase",
    "keyEncryptionKey",
    "recoverySecret",
    "sessionKey",
];

/// A credential. Passphrases stay JavaScript strings: they go straight to
/// WebCrypto and never into wasm memory.
pub(crate) enum Credential {
    Passphrase(JsValue),
    Key(JsValue),
    Recovery(RecoverySecret),
    /// The PBKDF2 result of a passphrase, as a non-extractable `CryptoKey`:
    /// it opens the passphrase slot without the passphrase. It lives only in
    /// memory (see `KeyState::session`).
    Session(JsValue),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credential::Passphrase(_) => "Credential::Passphrase(..)",
            Credential::Key(_) => "Credential::Key(..)",
            Credential::Recovery(_) => "Credential::Recovery(..)",
            Credential::Session(_) => "Credential::Session(..)",
        })
    }
}

fn get(obj: &JsValue, key: &str) -> Option<JsValue> {
    Reflect::get(obj, &JsValue::from_str(key))
        .ok()
        .filter(|v| !v.is_undefined())
}

impl Credential {
    /// The slot kind this credential opens.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Credential::Passphrase(_) | Credential::Session(_) => "passphrase",
            Credential::Key(_) => "key",
            Credential::Recovery(_) => "recovery",
        }
    }

    /// The credential among `open()` options, if any; at most one.
    pub(crate) fn from_options(options: &JsValue) -> Result<Option<Credential>> {
        if !options.is_object() {
            return Ok(None);
        }
        let present: Vec<(&str, JsValue)> = FIELDS
            .iter()
            .filter_map(|f| get(options, f).map(|v| (*f, v)))
            .collect();
        match present.as_slice() {
            [] => Ok(None),
            [(field, value)] => Credential::parse(field, value.clone()).map(Some),
            _ => Err(Error::validation(
                "options",
                "give one of passphrase, keyEncryptionKey, recoverySecret and sessionKey, not several",
            )),
        }
    }

    /// A credential given on its own: a passphrase string, or an object
    /// `{ passphrase } | { keyEncryptionKey } | { recoverySecret }`.
    pub(crate) fn from_value(value: &JsValue, what: &str) -> Result<Credential> {
        if value.is_string() {
            return Credential::parse("passphrase", value.clone());
        }
        match Credential::from_options(value)? {
            Some(c) => Ok(c),
            None => Err(Error::validation(
                what,
                format!("{what} takes a passphrase string, or {{ passphrase }}, {{ keyEncryptionKey }} or {{ recoverySecret }}"),
            )),
        }
    }

    fn parse(field: &str, value: JsValue) -> Result<Credential> {
        match field {
            "passphrase" => {
                let Some(text) = value.as_string() else {
                    return Err(Error::validation(field, "passphrase must be a string"));
                };
                let chars = text.chars().count();
                if chars == 0 || chars > MAX_PASSPHRASE_CHARS {
                    return Err(Error::validation(
                        field,
                        format!("passphrase must have 1 to {MAX_PASSPHRASE_CHARS} characters"),
                    ));
                }
                Ok(Credential::Passphrase(value))
            }
            "keyEncryptionKey" => {
                webcrypto::check_kek(&value)?;
                Ok(Credential::Key(value))
            }
            "sessionKey" => {
                webcrypto::check_kek(&value).map_err(|_| {
                    Error::validation(
                        field,
                        "sessionKey must be the CryptoKey that store.sessionKey() returned in a page",
                    )
                })?;
                Ok(Credential::Session(value))
            }
            _ => {
                let Some(text) = value.as_string() else {
                    return Err(Error::validation(field, "recoverySecret must be a string"));
                };
                RecoverySecret::parse(&text).map(Credential::Recovery).map_err(|e| {
                    Error::validation(
                        field,
                        match e {
                            RecoveryError::Checksum => "the recovery secret has a typo (its checksum does not match); check each group of five against the written copy",
                            RecoveryError::Malformed => "a recovery secret is 55 letters and digits in groups of five, as exportRecoveryKey() gave it",
                        },
                    )
                })
            }
        }
    }

    /// Checks a passphrase that is about to protect a store.
    pub(crate) fn check_new_passphrase(value: &JsValue, field: &str) -> Result<()> {
        let chars = value.as_string().map(|s| s.chars().count()).unwrap_or(0);
        if !(MIN_PASSPHRASE_CHARS..=MAX_PASSPHRASE_CHARS).contains(&chars) {
            return Err(Error::validation(
                field,
                format!(
                    "a passphrase needs {MIN_PASSPHRASE_CHARS} to {MAX_PASSPHRASE_CHARS} characters; \
                     a few unrelated words make a strong one"
                ),
            ));
        }
        Ok(())
    }
}

/// `options` without its credential fields, for JSON conversion.
pub(crate) fn without_credentials(options: &JsValue) -> JsValue {
    if !options.is_object() || js_sys::Array::is_array(options) {
        return options.clone();
    }
    let copy = Object::assign(&Object::new(), options.unchecked_ref());
    for f in FIELDS {
        let _ = Reflect::delete_property(&copy, &JsValue::from_str(f));
    }
    copy.into()
}

use wasm_bindgen::JsCast;
