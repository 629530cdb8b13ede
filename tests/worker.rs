//! The store in a dedicated worker.
#![cfg(target_arch = "wasm32")]

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_dedicated_worker);

mod common;

/// Proves this binary really runs in a dedicated worker.
#[wasm_bindgen_test::wasm_bindgen_test]
fn runs_in_a_worker() {
    let name = js_sys::Reflect::get(&js_sys::global(), &"constructor".into())
        .and_then(|c| js_sys::Reflect::get(&c, &"name".into()))
        .unwrap();
    assert_eq!(
        name.as_string().as_deref(),
        Some("DedicatedWorkerGlobalScope")
    );
}
