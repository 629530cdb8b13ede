//! Reading events: query plans over the page store and its indexes, read in
//! batches so that a log of any size streams through bounded memory.

use super::idb::layout::{
    self, BY_AGGREGATE_ID, BY_AGGREGATE_TYPE, BY_EVENT_TYPE, BY_TIME_BUCKET, META, META_HEAD_KEY,
    PAGES,
};
use super::idb::txn::{pending, request, values_by_key_of, Pending, Txn};
use super::open_ahead::open_pages;
use super::store::IdbStore;
use crate::at_rest::Opened;
use crate::crypto::blind::field;
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::page::TIME_BUCKET_MS;
use crate::record::Record;
use js_sys::Array;
use std::rc::Rc;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{IdbCursorDirection, IdbCursorWithValue, IdbKeyRange, IdbObjectStore};

/// Pages fetched per read transaction, at most.
const PAGES_PER_READ: u32 = 64;
/// Pages fetched per read of a scan that reads ahead (see
/// [`EventCursor::ahead`]): half as many, so the batch being handed out and
/// the one being read together hold no more than one batch of
/// [`PAGES_PER_READ`] did.
const PAGES_PER_READ_AHEAD: u32 = PAGES_PER_READ / 2;
/// Pages fetched by the first read of a query that may stop early (a limit,
/// or an index query). Each further read doubles, up to [`PAGES_PER_READ`]:
/// `events({ eventType, limit: 50 })` then reads the few pages it needs,
/// not 64 pages of 60 KiB.
const FIRST_PAGES_PER_READ: u32 = 4;

fn key(n: u64) -> JsValue {
    JsValue::from(n as f64)
}

fn range(lo: u64, hi: u64) -> Result<JsValue> {
    IdbKeyRange::bound(&key(lo), &key(hi))
        .map(Into::into)
        .map_err(super::idb::errors::from_dom)
}

enum Plan {
    /// Pages in key order from `lo` to `hi`.
    Range { lo: u64, hi: u64 },
    /// These page keys, in this order; `more` when they are only the first
    /// ones of an index value.
    Keys {
        keys: Vec<u64>,
        next: usize,
        more: Option<MoreKeys>,
    },
}

/// The rest of an index value's page keys, fetched when the first ones are
/// used up. A value's entries come in page-key order, so a forward query
/// with a limit reads a prefix of them instead of all: one event type's
/// entries in a 100,000-event store are some 2,700 page keys, and Chromium
/// reads index entries at tens of microseconds each.
struct MoreKeys {
    index: &'static str,
    query: JsValue,
    /// How many entries were fetched so far (from the value's first).
    fetched: u32,
    /// The page-key bounds of the query.
    lo: u64,
    hi: u64,
}

/// Index entries a limited forward query fetches first; doubled each time.
const FIRST_INDEX_KEYS: u32 = 64;

impl MoreKeys {
    /// The page keys after `after` from a fetch twice the size of the last,
    /// and whether the index value has nothing in the bounds after them.
    async fn fetch(&mut self, pages: &IdbObjectStore, after: u64) -> Result<(Vec<u64>, bool)> {
        let count = self.fetched.saturating_mul(2);
        let index = pages
            .index(self.index)
            .map_err(super::idb::errors::from_dom)?;
        let all =
            keys_of(request(index.get_all_keys_with_key_and_limit(&self.query, count)).await?);
        let exhausted = all.len() < count as usize || all.last().is_some_and(|k| *k >= self.hi);
        self.fetched = count;
        let (lo, hi) = (self.lo.max(after + 1), self.hi);
        Ok((
            all.into_iter().filter(|k| (lo..=hi).contains(k)).collect(),
            exhausted,
        ))
    }
}

/// A paged reader over the events matching a filter. The newest event at
/// the first read bounds the whole iteration, so every page sees the same
/// log.
pub(crate) struct EventCursor {
    store: Rc<IdbStore>,
    filter: Filter,
    plan: Option<Plan>,
    emitted: usize,
    done: bool,
    /// Pages the next read fetches.
    per_read: u32,
    /// A scan in key order with no limit (`iterate()`, `events()` with no
    /// filter but seqs) requests its next pages as soon as the last ones
    /// arrive, so IndexedDB reads them while this batch is checked and the
    /// caller works through it; before, the two took turns, and a third of
    /// a 100,000-event `iterate()` was spent waiting. The read's page
    /// count is kept with it.
    ahead: Option<(u32, Pending)>,
}

impl EventCursor {
    pub(crate) fn new(store: Rc<IdbStore>, filter: Filter) -> Self {
        EventCursor {
            store,
            filter,
            plan: None,
            emitted: 0,
            done: false,
            per_read: PAGES_PER_READ,
            ahead: None,
        }
    }

    /// Whether this cursor reads ahead: a forward range with no limit.
    fn reads_ahead(&self) -> bool {
        self.filter.limit.is_none() && matches!(self.plan, Some(Plan::Range { .. }))
    }

    /// The next non-empty batch of events, or `None` at the end.
    pub(crate) async fn next_batch(&mut self) -> Result<Option<Vec<Record>>> {
        loop {
            let left = self
                .filter
                .limit
                .map_or(usize::MAX, |l| l.saturating_sub(self.emitted));
            if self.done || left == 0 {
                self.done = true;
                return Ok(None);
            }
            if self.plan.is_none() {
                let plan = self.plan_query().await?;
                if self.filter.limit.is_some() || matches!(plan, Plan::Keys { .. }) {
                    self.per_read = FIRST_PAGES_PER_READ;
                }
                self.plan = Some(plan);
                if self.reads_ahead() {
                    self.per_read = PAGES_PER_READ_AHEAD;
                }
            }
            let pages = self.read_pages().await?;
            let opened = opened(&self.store, &pages).await?;
            let mut out = Vec::new();
            for ((first, _), opened) in pages.iter().zip(opened) {
                let filter = &self.filter;
                let mut records =
                    opened.read_checked_where(*first, filter.aggregate_id.as_deref(), |e| {
                        filter.matches(e)
                    })?;
                if filter.reverse {
                    records.reverse();
                }
                out.extend(records.into_iter().take(left - out.len()));
                if out.len() == left {
                    break;
                }
            }
            self.emitted += out.len();
            if !out.is_empty() {
                return Ok(Some(out));
            }
        }
    }

    /// Every remaining event.
    pub(crate) async fn collect(&mut self) -> Result<Vec<Record>> {
        let mut all = Vec::new();
        while let Some(batch) = self.next_batch().await? {
            all.extend(batch);
        }
        Ok(all)
    }

    async fn plan_query(&mut self) -> Result<Plan> {
        let at_rest = self.store.at_rest_for(None).await?;
        let only = |f: &str, v: &str| -> Result<JsValue> {
            IdbKeyRange::only(&JsValue::from_str(&at_rest.index_value(f, v)))
                .map(Into::into)
                .map_err(super::idb::errors::from_dom)
        };
        let f = &self.filter;
        let indexed: Option<(&str, JsValue)> = if let Some(id) = &f.aggregate_id {
            Some((BY_AGGREGATE_ID, only(field::AGGREGATE_ID, id)?))
        } else if let Some(t) = &f.event_type {
            Some((BY_EVENT_TYPE, only(field::EVENT_TYPE, t)?))
        } else if let Some(t) = &f.aggregate_type {
            Some((BY_AGGREGATE_TYPE, only(field::AGGREGATE_TYPE, t)?))
        } else if f.since_ms.is_some() || f.until_ms.is_some() {
            let from = f
                .since_ms
                .map_or(f64::MIN, |s| s.div_euclid(TIME_BUCKET_MS) as f64);
            let to = f
                .until_ms
                .map_or(f64::MAX, |u| (u - 1).div_euclid(TIME_BUCKET_MS) as f64);
            if from > to {
                self.done = true;
                return Ok(Plan::Keys {
                    keys: Vec::new(),
                    next: 0,
                    more: None,
                });
            }
            let r = IdbKeyRange::bound(&JsValue::from(from), &JsValue::from(to))
                .map_err(super::idb::errors::from_dom)?;
            Some((BY_TIME_BUCKET, r.into()))
        } else {
            None
        };
        let f = &self.filter;
        let txn = Txn::begin(
            self.store.db()?,
            &[META, PAGES],
            false,
            self.store.durability,
        )?;
        let pages = txn.store(PAGES)?;
        // The head and the index keys are read at once: one round trip.
        let head = pending(txn.store(META)?.get(&JsValue::from_str(META_HEAD_KEY)))?;
        // A forward query with a limit on one index value reads a prefix of
        // its entries (see MoreKeys); time buckets are ranges of values,
        // whose entries are not in page-key order.
        let prefix =
            f.limit.is_some() && !f.reverse && f.since_ms.is_none() && f.until_ms.is_none();
        let index_keys = match &indexed {
            Some((index, query)) => {
                let index = pages.index(index).map_err(super::idb::errors::from_dom)?;
                Some(pending(if prefix {
                    index.get_all_keys_with_key_and_limit(query, FIRST_INDEX_KEYS)
                } else {
                    index.get_all_keys_with_key(query)
                })?)
            }
            None => None,
        };
        let head = head.result().await?;
        let head_seq = layout::head_from_js(&head)?.map_or(0, |h| h.device_seq);
        let hi = f.to_seq.map_or(head_seq, |t| t.min(head_seq));
        let lo = match f.from_seq {
            Some(from) => page_containing(&pages, from).await?.unwrap_or(from),
            None => 0,
        };
        if hi == 0 || lo > hi {
            self.done = true;
            return Ok(Plan::Keys {
                keys: Vec::new(),
                next: 0,
                more: None,
            });
        }
        let mut more = None;
        let mut keys: Vec<u64> = match index_keys {
            None if !f.reverse => return Ok(Plan::Range { lo, hi }),
            None => keys_of(request(pages.get_all_keys_with_key(&range(lo, hi)?)).await?),
            Some(read) => {
                let mut keys = keys_of(read.result().await?);
                if prefix
                    && keys.len() == FIRST_INDEX_KEYS as usize
                    && keys.last().is_some_and(|k| *k < hi)
                {
                    if let Some((index, query)) = indexed {
                        more = Some(MoreKeys {
                            index,
                            query,
                            fetched: FIRST_INDEX_KEYS,
                            lo,
                            hi,
                        });
                    }
                }
                keys.retain(|k| (lo..=hi).contains(k));
                keys.sort_unstable();
                keys.dedup();
                keys
            }
        };
        if f.reverse {
            keys.reverse();
        }
        Ok(Plan::Keys {
            keys,
            next: 0,
            more,
        })
    }

    /// Requests up to `count` pages from key `lo` to `hi`, in a read
    /// transaction of its own.
    fn request_range(&self, lo: u64, hi: u64, count: u32) -> Result<Pending> {
        let txn = Txn::begin(self.store.db()?, &[PAGES], false, self.store.durability)?;
        let pages = txn.store(PAGES)?;
        Ok(values_by_key_of(
            &pages,
            &pages,
            &range(lo, hi)?,
            Some(count),
        ))
    }

    async fn read_pages(&mut self) -> Result<Vec<(u64, Vec<u8>)>> {
        let per_read = self.per_read;
        let cap = match self.reads_ahead() {
            true => PAGES_PER_READ_AHEAD,
            false => PAGES_PER_READ,
        };
        self.per_read = (per_read * 2).min(cap);
        let mut out = Vec::new();
        if let Some(Plan::Range { lo, hi }) = self.plan {
            let (count, read) = match self.ahead.take() {
                Some(ahead) => ahead,
                None => (per_read, self.request_range(lo, hi, per_read)?),
            };
            let values: Array = read.result().await?.unchecked_into();
            // A full read may have more after it, unless it reached `hi`.
            let last = match values.length() {
                n if n == count => Some(layout::page_first_device_seq(&values.get(n - 1))?),
                _ => None,
            };
            match last {
                Some(first) if first < hi => {
                    self.plan = Some(Plan::Range { lo: first + 1, hi });
                    // A read that cannot be issued now is issued, and
                    // fails, in the next call instead.
                    if self.reads_ahead() {
                        if let Ok(next) = self.request_range(first + 1, hi, self.per_read) {
                            self.ahead = Some((self.per_read, next));
                        }
                    }
                }
                _ => self.done = true,
            }
            for v in values.iter() {
                out.push(layout::page_key_and_records(&v)?);
            }
            return Ok(out);
        }
        let txn = Txn::begin(self.store.db()?, &[PAGES], false, self.store.durability)?;
        let pages = txn.store(PAGES)?;
        match self.plan.as_mut() {
            Some(Plan::Keys { keys, next, more }) => {
                if *next == keys.len() {
                    if let Some(m) = more.as_mut() {
                        let after = keys.last().copied().unwrap_or(0);
                        let (found, exhausted) = m.fetch(&pages, after).await?;
                        keys.extend(found);
                        if exhausted {
                            *more = None;
                        }
                    }
                }
                let end = (*next + per_read as usize).min(keys.len());
                let reads = keys[*next..end]
                    .iter()
                    .map(|k| pending(pages.get(&key(*k))))
                    .collect::<Result<Vec<_>>>()?;
                *next = end;
                if end == keys.len() && more.is_none() {
                    self.done = true;
                }
                for read in reads {
                    let v = read.result().await?;
                    if !v.is_undefined() {
                        out.push(layout::page_key_and_records(&v)?);
                    }
                }
            }
            Some(Plan::Range { .. }) | None => self.done = true,
        }
        Ok(out)
    }
}

/// Stored pages (first `device_seq`, bytes) opened for reading: the key
/// ring read again first if a page names a key this context has not seen,
/// then the records decrypted together (`open_ahead`) in an encrypted
/// store.
async fn opened<'a>(store: &IdbStore, pages: &'a [(u64, Vec<u8>)]) -> Result<Vec<Opened<'a>>> {
    let mut at_rest = store.at_rest()?;
    for (_, bytes) in pages {
        at_rest = store.at_rest_for(Some(bytes)).await?;
    }
    let bytes: Vec<&[u8]> = pages.iter().map(|(_, b)| &b[..]).collect();
    open_pages(store, &at_rest, &bytes).await
}

fn keys_of(value: JsValue) -> Vec<u64> {
    let array: Array = value.unchecked_into();
    array
        .iter()
        .filter_map(|k| k.as_f64())
        .map(|k| k as u64)
        .collect()
}

/// The key of the page holding `device_seq`: the greatest key ≤ it.
async fn page_containing(pages: &IdbObjectStore, device_seq: u64) -> Result<Option<u64>> {
    let upper = IdbKeyRange::upper_bound(&key(device_seq)).map_err(super::idb::errors::from_dom)?;
    let cursor =
        request(pages.open_key_cursor_with_range_and_direction(&upper, IdbCursorDirection::Prev))
            .await?;
    if cursor.is_null() || cursor.is_undefined() {
        return Ok(None);
    }
    let cursor: web_sys::IdbCursor = cursor.unchecked_into();
    Ok(cursor
        .primary_key()
        .ok()
        .and_then(|k| k.as_f64())
        .map(|k| k as u64))
}

impl IdbStore {
    /// The event at `device_seq`.
    pub(crate) async fn get(&self, device_seq: u64) -> Result<Record> {
        let txn = Txn::begin(self.db()?, &[PAGES], false, self.durability)?;
        let pages = txn.store(PAGES)?;
        let upper =
            IdbKeyRange::upper_bound(&key(device_seq)).map_err(super::idb::errors::from_dom)?;
        let cursor =
            request(pages.open_cursor_with_range_and_direction(&upper, IdbCursorDirection::Prev))
                .await?;
        let missing = || Error::storage(format!("event {device_seq} is not in the store"));
        let cursor: IdbCursorWithValue = cursor.dyn_into().map_err(|_| missing())?;
        let page =
            layout::page_key_and_records(&cursor.value().map_err(super::idb::errors::from_dom)?)?;
        let opened = opened(self, std::slice::from_ref(&page)).await?;
        opened[0]
            .read_checked_where(page.0, None, |e| e.device_seq == device_seq)?
            .into_iter()
            .next()
            .ok_or_else(missing)
    }

    /// An aggregate's version and events. The version is its last event's,
    /// so the two always agree.
    pub(crate) async fn aggregate(&self, aggregate_id: &str) -> Result<(u64, Vec<Record>)> {
        let at_rest = self.at_rest_for(None).await?;
        let stored_id = JsValue::from_str(&at_rest.index_value(field::AGGREGATE_ID, aggregate_id));
        let txn = Txn::begin(self.db()?, &[PAGES], false, self.durability)?;
        let index = txn
            .store(PAGES)?
            .index(BY_AGGREGATE_ID)
            .map_err(super::idb::errors::from_dom)?;
        let store = txn.store(PAGES)?;
        let pages = values_by_key_of(&store, &index, &stored_id, None);
        let pages: Array = pages.result().await?.unchecked_into();
        let pages = pages
            .iter()
            .map(|p| layout::page_key_and_records(&p))
            .collect::<Result<Vec<_>>>()?;
        let mut events = Vec::new();
        for ((first, _), opened) in pages.iter().zip(opened(self, &pages).await?) {
            events.extend(opened.read_checked_where(*first, Some(aggregate_id), |_| true)?);
        }
        Ok((crate::record::version_of(&events), events))
    }
}
