//! The pages a read brings, opened with WebCrypto before they are checked.
//!
//! AES-GCM in wasm runs in software, at about 15 MB/s here: it was four
//! fifths of an encrypted `verify()` in the profile, GHASH alone a fifth.
//! WebCrypto decrypts at native speed and away from this thread, but only
//! asynchronously; a read awaits IndexedDB anyway. So the pages that one
//! read brings are decrypted together, each record in a call of its own,
//! all in flight at once ([`OpenPlan`]), and only then checked as before.
//!
//! WebCrypto only speeds a read up; it never decides one. A page with
//! anything wrong (bytes that do not split into sealed records, a record
//! under a key the ring does not allow, one WebCrypto will not decrypt) is
//! opened by [`AtRest::open`], which finds what is wrong and reports it as
//! it always did; so does every page when WebCrypto is missing or fails.

use super::keys::webcrypto;
use super::store::IdbStore;
use crate::at_rest::{AtRest, Opened, SealedAtRest};
use crate::crypto::deferred::OpenPlan;
use crate::error::Result;

/// `pages` (stored page bytes) opened as `at_rest` says, with WebCrypto
/// where it can. A lock while decrypting wins: `ANNAL_LOCKED`.
pub(crate) async fn open_pages<'a>(
    store: &IdbStore,
    at_rest: &AtRest,
    pages: &[&'a [u8]],
) -> Result<Vec<Opened<'a>>> {
    let mut ahead = Vec::new();
    if let AtRest::Sealed(s) = at_rest {
        if webcrypto::available() {
            ahead = decrypt(store, s, pages).await;
        }
        store.at_rest()?;
    }
    let mut ahead = ahead.into_iter();
    Ok(pages
        .iter()
        .map(|bytes| match ahead.next().flatten() {
            Some(plain) => Opened::whole(plain),
            None => at_rest.open(bytes),
        })
        .collect())
}

/// Each page's plaintext where WebCrypto opened all of it; empty if it
/// opened nothing.
async fn decrypt(store: &IdbStore, s: &SealedAtRest, pages: &[&[u8]]) -> Vec<Option<Vec<u8>>> {
    let plan = OpenPlan::new(s, pages.iter().copied());
    if plan.is_empty() {
        return Vec::new();
    }
    let mut keys = Vec::new();
    for id in plan.keys() {
        match store.keys.web_data_key(s, id).await {
            Ok(key) => keys.push((id, key)),
            Err(_) => return Vec::new(),
        }
    }
    match webcrypto::open_all(&keys, &plan).await {
        Ok((plains, lens)) => plan.into_plain(&plains, &lens),
        Err(_) => Vec::new(),
    }
}
