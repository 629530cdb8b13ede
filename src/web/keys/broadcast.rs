//! Key events shared by every context (tab, worker, service worker) that
//! has the same store open, through a BroadcastChannel named like the
//! database. Only events travel, never keys: each context unlocks itself.

use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::*;
use web_sys::{BroadcastChannel, MessageEvent};

/// A key event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyEvent {
    /// A context locked the store: every context locks.
    Locked,
    /// A context changed the key ring (rotation, re-encryption).
    RingChanged,
}

impl KeyEvent {
    fn as_str(self) -> &'static str {
        match self {
            KeyEvent::Locked => "lock",
            KeyEvent::RingChanged => "ring",
        }
    }

    fn parse(s: &str) -> Option<KeyEvent> {
        match s {
            "lock" => Some(KeyEvent::Locked),
            "ring" => Some(KeyEvent::RingChanged),
            _ => None,
        }
    }
}

/// The channel of one open store.
pub(crate) struct KeyChannel {
    channel: BroadcastChannel,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
}

impl KeyChannel {
    /// Listens on the channel of database `db_name`. `None` where the
    /// context has no BroadcastChannel.
    pub(crate) fn open(
        db_name: &str,
        mut on_event: impl FnMut(KeyEvent) + 'static,
    ) -> Option<KeyChannel> {
        let channel = BroadcastChannel::new(db_name).ok()?;
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            let kind = Reflect::get(&e.data(), &JsValue::from_str("type"))
                .ok()
                .and_then(|t| t.as_string());
            if let Some(event) = kind.as_deref().and_then(KeyEvent::parse) {
                on_event(event);
            }
        });
        channel.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        Some(KeyChannel {
            channel,
            _on_message: on_message,
        })
    }

    /// Tells every other context.
    pub(crate) fn post(&self, event: KeyEvent) {
        let message = Object::new();
        let _ = Reflect::set(
            &message,
            &JsValue::from_str("type"),
            &JsValue::from_str(event.as_str()),
        );
        let _ = self.channel.post_message(&message);
    }
}

impl Drop for KeyChannel {
    fn drop(&mut self) {
        self.channel.set_onmessage(None);
        self.channel.close();
    }
}
