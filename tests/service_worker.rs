//! The store in a service worker.
#![cfg(target_arch = "wasm32")]

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_service_worker);

mod common;

/// Proves this binary really runs in a service worker.
#[wasm_bindgen_test::wasm_bindgen_test]
fn runs_in_a_service_worker() {
    let name = js_sys::Reflect::get(&js_sys::global(), &"constructor".into())
        .and_then(|c| js_sys::Reflect::get(&c, &"name".into()))
        .unwrap();
    assert_eq!(
        name.as_string().as_deref(),
        Some("ServiceWorkerGlobalScope")
    );
}
