//! Sealing with an AES-256-GCM that runs elsewhere.
//!
//! In the browser, WebCrypto encrypts an order of magnitude faster than
//! AES in wasm, but it is asynchronous, and an append transaction must not
//! await anything but its own requests. So when an append already knows
//! the head and versions it will find (this context's write cache), its
//! records are sealed before the transaction starts: [`SealPlan`] lays them
//! out exactly as [`crate::at_rest::AtRest::pack`] would (headers, nonces,
//! AADs, plaintexts and page cuts), the caller encrypts, and
//! [`SealPlan::into_pages`] frames the ciphertexts into pages. The bytes
//! are those of docs/FORMAT.md §8.4.2 whichever AES-GCM produced them.

use super::aead::{NONCE_LEN, TAG_LEN};
use super::sealed;
use crate::at_rest::{AtRest, SealedAtRest};
use crate::entropy::Entropy;
use crate::error::{Error, Result};
use crate::page::{self, Page};
use crate::record::Record;
use zeroize::Zeroizing;

/// The encryptions one commit needs, each record's inputs concatenated in
/// order so they cross to the cipher in one piece.
pub struct SealPlan {
    /// The data key every record is sealed under.
    pub key_id: u32,
    /// Each record's 12-byte nonce, concatenated.
    pub nonces: Vec<u8>,
    /// Each record's AAD, concatenated; lengths in `aad_lens`.
    pub aads: Vec<u8>,
    /// Byte length of each AAD.
    pub aad_lens: Vec<u32>,
    /// Each record's plaintext (one kind-1 record), concatenated; lengths in
    /// `plain_lens`. Zeroized when the plan is dropped.
    pub plains: Zeroizing<Vec<u8>>,
    /// Byte length of each plaintext.
    pub plain_lens: Vec<u32>,
    headers: Vec<Vec<u8>>,
}

impl std::fmt::Debug for SealPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the plaintexts.
        f.debug_struct("SealPlan")
            .field("key_id", &self.key_id)
            .field("records", &self.headers.len())
            .finish()
    }
}

impl SealPlan {
    /// Plans sealing `records` (in `device_seq` order) under the ring's
    /// current key, with fresh nonces.
    pub fn new(s: &SealedAtRest, records: &[Record], entropy: &dyn Entropy) -> SealPlan {
        let key_id = s.ring.current;
        let mut plan = SealPlan {
            key_id,
            nonces: vec![0; records.len() * NONCE_LEN],
            aads: Vec::new(),
            aad_lens: Vec::with_capacity(records.len()),
            plains: Zeroizing::new(Vec::new()),
            plain_lens: Vec::with_capacity(records.len()),
            headers: Vec::with_capacity(records.len()),
        };
        entropy.fill(&mut plan.nonces);
        for record in records {
            let e = &record.envelope;
            let header = sealed::header(key_id, e.device_seq, &e.event_id);
            let aad = sealed::aad(s.keys.store_id(), &header);
            plan.aads.extend_from_slice(&aad);
            plan.aad_lens.push(aad.len() as u32);
            let before = plan.plains.len();
            page::encode_record(&mut plan.plains, record);
            plan.plain_lens.push((plan.plains.len() - before) as u32);
            plan.headers.push(header);
        }
        plan
    }

    /// The nonce of record `i`.
    pub fn nonce(&self, i: usize) -> [u8; NONCE_LEN] {
        let mut nonce = [0; NONCE_LEN];
        nonce.copy_from_slice(&self.nonces[i * NONCE_LEN..(i + 1) * NONCE_LEN]);
        nonce
    }

    /// The pages of `records`, from `ciphertexts`: each plaintext's
    /// ciphertext ‖ tag, concatenated in order. Pages are cut where
    /// [`AtRest::pack`] cuts them.
    pub fn into_pages(
        self,
        at_rest: &AtRest,
        records: &[Record],
        ciphertexts: &[u8],
    ) -> Result<Vec<Page>> {
        let expected: usize = self.plain_lens.iter().map(|&n| n as usize + TAG_LEN).sum();
        if ciphertexts.len() != expected || records.len() != self.headers.len() {
            return Err(Error::internal(format!(
                "the cipher returned {} bytes for {} records, not {expected}",
                ciphertexts.len(),
                self.headers.len()
            )));
        }
        let mut bytes = Vec::new();
        let mut ends = Vec::with_capacity(records.len());
        let mut at = 0;
        for (i, header) in self.headers.iter().enumerate() {
            let len = self.plain_lens[i] as usize + TAG_LEN;
            sealed::frame(
                &mut bytes,
                header,
                &self.nonce(i),
                &ciphertexts[at..at + len],
            );
            at += len;
            ends.push(bytes.len());
        }
        Ok(at_rest.assemble(records, &ends, &bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keyring::KeyRing;
    use crate::crypto::keys::{KeySet, MasterKey};
    use crate::draft::Draft;
    use crate::entropy::SeededEntropy;
    use crate::memory::MemoryStore;

    fn sealed() -> SealedAtRest {
        SealedAtRest {
            keys: KeySet::new("store-d", MasterKey::from_bytes(&[9; 32]).unwrap()),
            blind_indexes: true,
            ring: KeyRing::new(1000),
        }
    }

    /// 120 records of about 1 KiB, so they span three pages.
    fn records() -> Vec<Record> {
        let mut store = MemoryStore::for_tests(AtRest::Plain);
        let drafts = (0..120)
            .map(|i| {
                let v = serde_json::json!({
                    "aggregateType": "diary", "aggregateId": format!("p-{}", i % 7),
                    "eventType": "noted", "payload": {"i": i, "text": "x".repeat(1000)}
                });
                Draft::from_value(&v).unwrap()
            })
            .collect();
        store.append_batch(drafts).unwrap()
    }

    /// What an outside AES-GCM does with the plan, done with ours.
    fn encrypt(s: &SealedAtRest, plan: &SealPlan) -> Vec<u8> {
        let key = s.keys.data_key(plan.key_id);
        let (mut out, mut a, mut p) = (Vec::new(), 0, 0);
        for i in 0..plan.plain_lens.len() {
            let (al, pl) = (plan.aad_lens[i] as usize, plan.plain_lens[i] as usize);
            out.extend(key.encrypt(
                &plan.nonce(i),
                &plan.aads[a..a + al],
                &plan.plains[p..p + pl],
            ));
            (a, p) = (a + al, p + pl);
        }
        out
    }

    #[test]
    fn planned_pages_are_the_pages_pack_makes_and_read_back() {
        let s = sealed();
        let at_rest = AtRest::Sealed(Box::new(s.clone()));
        let records = records();
        let plan = SealPlan::new(&s, &records, &SeededEntropy::new(5));
        let ciphertexts = encrypt(&s, &plan);
        let pages = plan.into_pages(&at_rest, &records, &ciphertexts).unwrap();
        let packed = at_rest.pack(&records, &SeededEntropy::new(5));
        assert!(pages.len() >= 3);
        assert_eq!(pages.len(), packed.len());
        for (page, other) in pages.iter().zip(&packed) {
            assert_eq!(page.meta, other.meta);
            // Only the nonces differ (drawn in another order).
            assert_eq!(page.records.len(), other.records.len());
            let (ours, theirs) = (
                sealed::split(&page.records).0,
                sealed::split(&other.records).0,
            );
            assert_eq!(ours.len(), theirs.len());
            for (a, b) in ours.iter().zip(&theirs) {
                assert!(a.header == b.header && a.ciphertext.len() == b.ciphertext.len());
            }
        }
        let mut back = Vec::new();
        for page in &pages {
            back.extend(
                at_rest
                    .read_checked(page.meta.first_device_seq, &page.records)
                    .unwrap(),
            );
        }
        assert_eq!(back, records);
    }

    #[test]
    fn a_short_answer_from_the_cipher_is_an_error_not_a_panic() {
        let s = sealed();
        let at_rest = AtRest::Sealed(Box::new(s.clone()));
        let records = records();
        let plan = SealPlan::new(&s, &records, &SeededEntropy::new(5));
        let mut ciphertexts = encrypt(&s, &plan);
        ciphertexts.pop();
        let err = plan
            .into_pages(&at_rest, &records, &ciphertexts)
            .unwrap_err();
        assert!(err.message.contains("cipher returned"), "{}", err.message);
    }
}
