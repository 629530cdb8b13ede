//! The store's identity and the small derived records kept beside the log:
//! the device head, per-aggregate versions and idempotency keys. All are
//! written in the same transaction as the events they describe.

use crate::envelope::GENESIS_HASH;

/// Who a store belongs to. Fixed when the store is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Random id of this physical store.
    pub store_id: String,
    /// Tenant (study, organisation).
    pub tenant_id: String,
    /// The one user of this store.
    pub user_id: String,
    /// Generated device id; never supplied by apps.
    pub device_id: String,
}

/// The end of the device chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// `device_seq` of the last event, 0 when empty.
    pub device_seq: u64,
    /// `hash` of the last event, [`GENESIS_HASH`] when empty.
    pub hash: String,
}

impl Default for Head {
    fn default() -> Head {
        Head::genesis()
    }
}

impl Head {
    /// The head of an empty chain.
    pub fn genesis() -> Head {
        Head {
            device_seq: 0,
            hash: GENESIS_HASH.to_string(),
        }
    }
}

/// The current state of one aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateState {
    /// The aggregate's type; fixed by its first event.
    pub aggregate_type: String,
    /// Its current version (the `aggregate_version` of its last event).
    pub version: u64,
    /// `device_seq` of its last event.
    pub last_device_seq: u64,
}

/// A used idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyEntry {
    /// The event the key produced.
    pub device_seq: u64,
    /// [`crate::draft::Draft::fingerprint`] of that event's request.
    pub fingerprint: String,
}

impl Identity {
    /// A new identity with fresh random `store_id` and `device_id`.
    pub fn generate(
        tenant_id: &str,
        user_id: &str,
        clock: &dyn crate::clock::Clock,
        entropy: &dyn crate::entropy::Entropy,
    ) -> Identity {
        let fresh = || {
            let mut random = [0u8; 10];
            entropy.fill(&mut random);
            crate::uuid7::from_parts(clock.now_ms(), random)
        };
        Identity {
            store_id: fresh(),
            device_id: fresh(),
            tenant_id: tenant_id.to_string(),
            user_id: user_id.to_string(),
        }
    }

    /// What every record of this store must carry.
    pub fn expected(&self) -> crate::chain::ExpectedIdentity {
        crate::chain::ExpectedIdentity {
            tenant_id: self.tenant_id.clone(),
            user_id: self.user_id.clone(),
            device_id: self.device_id.clone(),
        }
    }
}
