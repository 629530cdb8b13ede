//! Sealing and opening with an AES-256-GCM that runs elsewhere.
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
//!
//! Reading is the other way round: [`OpenPlan`] lists the decryptions the
//! pages of one read need, the caller decrypts them all at once, and
//! [`OpenPlan::into_plain`] gives each page whose records all opened its
//! plaintext, the bytes [`crate::at_rest::AtRest::open`] would give. The
//! outside cipher only ever speeds a read up: a page with anything wrong is
//! left to `AtRest::open`, which finds the damage and names it.

use super::aead::{NONCE_LEN, TAG_LEN};
use super::sealed;
use crate::at_rest::{AtRest, SealedAtRest};
use crate::entropy::Entropy;
use crate::error::{Error, Result};
use crate::page::{self, Page};
use crate::record::Record;
use std::ops::Range;
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

/// The decryptions reading a batch of stored pages needs: every sealed
/// record of the pages that can be opened at all, each one's inputs
/// concatenated in order so they cross to the cipher in one piece. A page
/// that does not split into sealed records, or holds a record under a key
/// the ring does not allow, is left out; [`AtRest::open`] reads it.
pub struct OpenPlan {
    /// The data key of each record.
    pub key_ids: Vec<u32>,
    /// Each record's 12-byte nonce, concatenated.
    pub nonces: Vec<u8>,
    /// Each record's AAD, concatenated; lengths in `aad_lens`.
    pub aads: Vec<u8>,
    /// Byte length of each AAD.
    pub aad_lens: Vec<u32>,
    /// Each record's ciphertext ‖ tag, concatenated; lengths in
    /// `sealed_lens`.
    pub sealed: Vec<u8>,
    /// Byte length of each ciphertext ‖ tag.
    pub sealed_lens: Vec<u32>,
    /// For each page, the range of its records in the plan, or `None` for
    /// a page left out.
    pages: Vec<Option<Range<usize>>>,
}

impl std::fmt::Debug for OpenPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenPlan")
            .field("pages", &self.pages.len())
            .field("records", &self.key_ids.len())
            .finish()
    }
}

impl OpenPlan {
    /// Plans opening `pages` (stored page bytes) of a store sealed as `s`.
    pub fn new<'a>(s: &SealedAtRest, pages: impl IntoIterator<Item = &'a [u8]>) -> OpenPlan {
        let mut plan = OpenPlan {
            key_ids: Vec::new(),
            nonces: Vec::new(),
            aads: Vec::new(),
            aad_lens: Vec::new(),
            sealed: Vec::new(),
            sealed_lens: Vec::new(),
            pages: Vec::new(),
        };
        for bytes in pages {
            let (records, damage) = sealed::split(bytes);
            let openable = damage.is_none()
                && records
                    .iter()
                    .all(|r| s.ring.usable(r.key_id) && r.nonce.len() == NONCE_LEN);
            if !openable {
                plan.pages.push(None);
                continue;
            }
            let first = plan.key_ids.len();
            for r in &records {
                let aad = sealed::aad(s.keys.store_id(), r.header);
                plan.key_ids.push(r.key_id);
                plan.nonces.extend_from_slice(r.nonce);
                plan.aads.extend_from_slice(&aad);
                plan.aad_lens.push(aad.len() as u32);
                plan.sealed.extend_from_slice(r.ciphertext);
                plan.sealed_lens.push(r.ciphertext.len() as u32);
            }
            plan.pages.push(Some(first..plan.key_ids.len()));
        }
        plan
    }

    /// Whether there is nothing to decrypt.
    pub fn is_empty(&self) -> bool {
        self.key_ids.is_empty()
    }

    /// The distinct data keys the plan uses, in the order records first
    /// name them. (Pages name one key each, or two around a rotation, so a
    /// search of the list beats a sort, which would add 4 kB of wasm.)
    pub fn keys(&self) -> Vec<u32> {
        let mut ids = Vec::new();
        for id in &self.key_ids {
            if !ids.contains(id) {
                ids.push(*id);
            }
        }
        ids
    }

    /// The nonce of record `i`.
    pub fn nonce(&self, i: usize) -> &[u8] {
        &self.nonces[i * NONCE_LEN..(i + 1) * NONCE_LEN]
    }

    /// For each planned page, in order, its plaintext records (what
    /// [`AtRest::open`] gives), or `None` where the page was left out or
    /// one of its records did not open. `plains` holds the plaintexts of the
    /// records that opened, concatenated in order; `lens` has each record's
    /// plaintext length, or `None` where the cipher refused it. An answer
    /// that does not fit the plan opens nothing: every page is then `None`.
    pub fn into_plain(self, plains: &[u8], lens: &[Option<u32>]) -> Vec<Option<Vec<u8>>> {
        let fits = lens.len() == self.sealed_lens.len()
            && lens.iter().zip(&self.sealed_lens).all(|(l, &s)| {
                // AES-GCM keeps the length: the plaintext is the ciphertext.
                l.is_none_or(|l| l as usize + TAG_LEN == s as usize)
            })
            && lens.iter().flatten().map(|&l| l as usize).sum::<usize>() == plains.len();
        if !fits {
            return vec![None; self.pages.len()];
        }
        let mut starts = Vec::with_capacity(lens.len() + 1);
        let mut at = 0;
        for l in lens {
            starts.push(at);
            at += l.unwrap_or(0) as usize;
        }
        starts.push(at);
        self.pages
            .into_iter()
            .map(|page| {
                let range = page?;
                lens[range.clone()]
                    .iter()
                    .all(Option::is_some)
                    .then(|| plains[starts[range.start]..starts[range.end]].to_vec())
            })
            .collect()
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

    /// What an outside AES-GCM does with an open plan, done with ours: the
    /// plaintexts that opened, and each record's length or `None`.
    fn decrypt(s: &SealedAtRest, plan: &OpenPlan) -> (Vec<u8>, Vec<Option<u32>>) {
        let (mut out, mut lens, mut a, mut c) = (Vec::new(), Vec::new(), 0, 0);
        for i in 0..plan.key_ids.len() {
            let (al, cl) = (plan.aad_lens[i] as usize, plan.sealed_lens[i] as usize);
            let opened = s.keys.data_key(plan.key_ids[i]).decrypt(
                plan.nonce(i),
                &plan.aads[a..a + al],
                &plan.sealed[c..c + cl],
            );
            match opened {
                Ok(p) => {
                    lens.push(Some(p.len() as u32));
                    out.extend(p);
                }
                Err(_) => lens.push(None),
            }
            (a, c) = (a + al, c + cl);
        }
        (out, lens)
    }

    fn stored_pages() -> (SealedAtRest, AtRest, Vec<Page>) {
        let s = sealed();
        let at_rest = AtRest::Sealed(Box::new(s.clone()));
        let pages = at_rest.pack(&records(), &SeededEntropy::new(8));
        assert!(pages.len() >= 3);
        (s, at_rest, pages)
    }

    #[test]
    fn planned_openings_give_what_open_gives() {
        let (s, at_rest, pages) = stored_pages();
        let plan = OpenPlan::new(&s, pages.iter().map(|p| &p.records[..]));
        assert_eq!(plan.key_ids.len(), 120);
        assert_eq!(plan.keys(), vec![1]);
        let (plains, lens) = decrypt(&s, &plan);
        let opened = plan.into_plain(&plains, &lens);
        assert_eq!(opened.len(), pages.len());
        for (page, plain) in pages.iter().zip(opened) {
            let ours = at_rest.open(&page.records);
            assert!(ours.damage.is_none());
            assert_eq!(plain.as_deref(), Some(&ours.plain[..]));
        }
    }

    #[test]
    fn a_damaged_page_is_left_to_open_and_the_others_still_open() {
        let (s, _, mut pages) = stored_pages();
        // Page 0: a ciphertext byte flipped (its record does not
        // authenticate). Page 1: cut short (it does not split). Page 2
        // stays whole.
        let n = pages[0].records.len();
        pages[0].records[n - 20] ^= 1;
        let m = pages[1].records.len();
        pages[1].records.truncate(m - 3);
        let plan = OpenPlan::new(&s, pages.iter().map(|p| &p.records[..]));
        let (plains, lens) = decrypt(&s, &plan);
        assert_eq!(lens.iter().filter(|l| l.is_none()).count(), 1);
        let opened = plan.into_plain(&plains, &lens);
        assert_eq!(opened[0], None);
        assert_eq!(opened[1], None);
        assert!(opened[2].is_some());
    }

    #[test]
    fn a_page_under_a_key_the_ring_does_not_allow_is_left_out() {
        let (mut s, _, pages) = stored_pages();
        s.ring.rotate(1000);
        s.ring.retire_before(2);
        assert!(!s.ring.usable(1));
        let plan = OpenPlan::new(&s, pages.iter().map(|p| &p.records[..]));
        assert!(plan.is_empty());
        let opened = plan.into_plain(&[], &[]);
        assert_eq!(opened, vec![None; pages.len()]);
    }

    #[test]
    fn an_answer_that_does_not_fit_the_plan_opens_nothing() {
        let (s, _, pages) = stored_pages();
        let plan = || OpenPlan::new(&s, pages.iter().map(|p| &p.records[..]));
        let (plains, lens) = decrypt(&s, &plan());
        let none = vec![None; pages.len()];
        // A length short of its record's, one record missing, a byte more.
        let mut short = lens.clone();
        short[0] = short[0].map(|l| l - 1);
        assert_eq!(plan().into_plain(&plains[1..], &short), none);
        assert_eq!(plan().into_plain(&plains, &lens[1..]), none);
        let mut more = plains.clone();
        more.push(0);
        assert_eq!(plan().into_plain(&more, &lens), none);
        assert!(plan()
            .into_plain(&plains, &lens)
            .iter()
            .all(Option::is_some));
    }
}
