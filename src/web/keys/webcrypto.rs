//! Key-encryption keys through WebCrypto, which runs at native speed and
//! outside any IndexedDB transaction. PBKDF2 with 600,000 iterations would
//! take tens of seconds in a debug wasm build.

use crate::crypto::deferred::{OpenPlan, SealPlan};
use crate::crypto::keys::MasterKey;
use crate::error::{Error, ErrorCode, Result};
use js_sys::{Promise, Uint32Array, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen(module = "/src/web/keys/glue.js")]
extern "C" {
    #[wasm_bindgen(js_name = deriveKek, catch)]
    fn derive_kek_js(
        passphrase: &JsValue,
        salt: &Uint8Array,
        iterations: u32,
    ) -> std::result::Result<Promise, JsValue>;
    #[wasm_bindgen(js_name = importKek, catch)]
    fn import_kek_js(raw: &Uint8Array) -> std::result::Result<Promise, JsValue>;
    #[wasm_bindgen(js_name = kekProblem)]
    fn kek_problem_js(key: &JsValue) -> String;
    #[wasm_bindgen(js_name = wrap, catch)]
    fn wrap_js(
        kek: &JsValue,
        iv: &Uint8Array,
        aad: &Uint8Array,
        bytes: &Uint8Array,
    ) -> std::result::Result<Promise, JsValue>;
    #[wasm_bindgen(js_name = subtleAvailable)]
    fn subtle_available_js() -> bool;
    #[wasm_bindgen(js_name = importDataKey, catch)]
    fn import_data_key_js(raw: &Uint8Array) -> std::result::Result<Promise, JsValue>;
    #[wasm_bindgen(js_name = sealAll, catch)]
    fn seal_all_js(
        key: &JsValue,
        nonces: &Uint8Array,
        aads: &Uint8Array,
        aad_lens: &Uint32Array,
        plains: &Uint8Array,
        plain_lens: &Uint32Array,
    ) -> std::result::Result<Promise, JsValue>;
    #[wasm_bindgen(js_name = openAll, catch)]
    #[allow(clippy::too_many_arguments)]
    fn open_all_js(
        keys: &js_sys::Array,
        key_index: &Uint32Array,
        nonces: &Uint8Array,
        aads: &Uint8Array,
        aad_lens: &Uint32Array,
        sealed: &Uint8Array,
        sealed_lens: &Uint32Array,
    ) -> std::result::Result<Promise, JsValue>;
    #[wasm_bindgen(js_name = unwrap, catch)]
    fn unwrap_js(
        kek: &JsValue,
        iv: &Uint8Array,
        aad: &Uint8Array,
        bytes: &Uint8Array,
    ) -> std::result::Result<Promise, JsValue>;
}

fn crypto_error(what: &str, e: JsValue) -> Error {
    let name = js_sys::Reflect::get(&e, &JsValue::from_str("name"))
        .ok()
        .and_then(|n| n.as_string())
        .unwrap_or_default();
    Error::new(
        ErrorCode::Storage,
        format!("WebCrypto could not {what} ({name}); this browser context must offer crypto.subtle (a secure context: https or localhost)"),
    )
}

async fn settle(what: &str, promise: std::result::Result<Promise, JsValue>) -> Result<JsValue> {
    let promise = promise.map_err(|e| crypto_error(what, e))?;
    JsFuture::from(promise)
        .await
        .map_err(|e| crypto_error(what, e))
}

/// The KEK of a passphrase: PBKDF2-HMAC-SHA256.
pub(crate) async fn derive_kek(
    passphrase: &JsValue,
    salt: &[u8],
    iterations: u32,
) -> Result<JsValue> {
    settle(
        "derive a key from the passphrase",
        derive_kek_js(passphrase, &Uint8Array::from(salt), iterations),
    )
    .await
}

/// A non-extractable KEK from raw bytes (the recovery KEK).
pub(crate) async fn import_kek(raw: &[u8]) -> Result<JsValue> {
    settle("import a key", import_kek_js(&Uint8Array::from(raw))).await
}

/// Checks that an app-supplied key can be a KEK.
pub(crate) fn check_kek(key: &JsValue) -> Result<()> {
    let problem = kek_problem_js(key);
    if problem.is_empty() {
        return Ok(());
    }
    Err(Error::validation(
        "keyEncryptionKey",
        format!(
            "keyEncryptionKey cannot be used: {problem}; pass a CryptoKey from \
             crypto.subtle.importKey/generateKey with {{ name: \"AES-GCM\", length: 256 }}, \
             extractable false, usages [\"encrypt\", \"decrypt\"]"
        ),
    ))
}

/// Wraps the master key under `kek`.
pub(crate) async fn wrap(
    kek: &JsValue,
    iv: &[u8],
    aad: &[u8],
    master: &MasterKey,
) -> Result<Vec<u8>> {
    let wrapped = settle(
        "wrap the master key",
        wrap_js(
            kek,
            &Uint8Array::from(iv),
            &Uint8Array::from(aad),
            &Uint8Array::from(&master.expose()[..]),
        ),
    )
    .await?;
    Ok(wrapped.unchecked_into::<Uint8Array>().to_vec())
}

/// Unwraps a master key; `None` if `kek` is the wrong key.
pub(crate) async fn unwrap(
    kek: &JsValue,
    iv: &[u8],
    aad: &[u8],
    wrapped: &[u8],
) -> Result<Option<MasterKey>> {
    let out = settle(
        "unwrap the master key",
        unwrap_js(
            kek,
            &Uint8Array::from(iv),
            &Uint8Array::from(aad),
            &Uint8Array::from(wrapped),
        ),
    )
    .await?;
    if out.is_null() {
        return Ok(None);
    }
    let bytes: Uint8Array = out.unchecked_into();
    let mut copy = zeroize::Zeroizing::new(bytes.to_vec());
    bytes.fill(0, 0, bytes.length());
    let key = MasterKey::from_bytes(&copy);
    zeroize::Zeroize::zeroize(&mut *copy);
    Ok(key)
}

/// Whether this context has WebCrypto.
pub(crate) fn available() -> bool {
    subtle_available_js()
}

/// Data key bytes as a non-extractable `CryptoKey` that encrypts and
/// decrypts.
pub(crate) async fn import_data_key(raw: &[u8]) -> Result<JsValue> {
    settle(
        "import a data key",
        import_data_key_js(&Uint8Array::from(raw)),
    )
    .await
}

/// Runs the encryptions of `plan` under `key` (from [`import_data_key`]):
/// the ciphertexts ‖ tags, concatenated in order.
pub(crate) async fn seal_all(key: &JsValue, plan: &SealPlan) -> Result<Vec<u8>> {
    let out = settle(
        "encrypt the new records",
        seal_all_js(
            key,
            &Uint8Array::from(plan.nonces.as_slice()),
            &Uint8Array::from(plan.aads.as_slice()),
            &Uint32Array::from(plan.aad_lens.as_slice()),
            &Uint8Array::from(plan.plains.as_slice()),
            &Uint32Array::from(plan.plain_lens.as_slice()),
        ),
    )
    .await?;
    Ok(out.unchecked_into::<Uint8Array>().to_vec())
}

/// Runs the decryptions of `plan`, each under its key in `keys` (by key
/// id, from [`import_data_key`]): the plaintexts of the records that
/// opened, concatenated in order, and each record's plaintext length, or
/// `None` where WebCrypto refused it.
pub(crate) async fn open_all(
    keys: &[(u32, JsValue)],
    plan: &OpenPlan,
) -> Result<(Vec<u8>, Vec<Option<u32>>)> {
    let mut key_index = Vec::with_capacity(plan.key_ids.len());
    for id in &plan.key_ids {
        let i = keys.iter().position(|(k, _)| k == id).ok_or_else(|| {
            Error::internal(format!("data key {id} was not imported for reading"))
        })?;
        key_index.push(i as u32);
    }
    let out = settle(
        "decrypt the records read",
        open_all_js(
            &keys.iter().map(|(_, k)| k.clone()).collect(),
            &Uint32Array::from(key_index.as_slice()),
            &Uint8Array::from(plan.nonces.as_slice()),
            &Uint8Array::from(plan.aads.as_slice()),
            &Uint32Array::from(plan.aad_lens.as_slice()),
            &Uint8Array::from(plan.sealed.as_slice()),
            &Uint32Array::from(plan.sealed_lens.as_slice()),
        ),
    )
    .await?;
    let out: js_sys::Array = out.unchecked_into();
    let plains: Uint8Array = out.get(0).unchecked_into();
    let lens: Uint32Array = out.get(1).unchecked_into();
    // Not `Zeroizing`: these become the events a read hands its caller, as
    // the plaintexts `AtRest::open` makes do, and zeroizing them cost a
    // twentieth of an encrypted `verify()`. The JavaScript copy is zeroed.
    let copied = plains.to_vec();
    plains.fill(0, 0, plains.length());
    let lens = lens
        .to_vec()
        .into_iter()
        .map(|l| (l != u32::MAX).then_some(l))
        .collect();
    Ok((copied, lens))
}
