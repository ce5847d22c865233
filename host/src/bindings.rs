//! Host bindings generated from WIT: the `dub:media` interfaces the edge component imports
//! (implemented natively in `media.rs`), Spin's `fermyon:spin/variables@2.0.0` and
//! `fermyon:spin/key-value@2.0.0` (in `kv.rs`).

/// `dub:media@0.1.0`, world `media-imports`.
pub mod media {
    wasmtime::component::bindgen!({
        path: "../wit/media.wit",
        world: "media-imports",
        // Every host function may trap (bad resource handle); media errors are WIT results.
        imports: { default: trappable },
        with: {
            "dub:media/types.pcm": dub_media::Pcm,
            "dub:media/types.segment": crate::media::SegmentRes,
        },
    });
}

/// `fermyon:spin@2.0.0`, interface `variables`.
pub mod spin {
    wasmtime::component::bindgen!({
        path: "wit/spin-variables.wit",
        world: "variables-host",
        imports: { default: trappable },
    });
}

/// `fermyon:spin@2.0.0`, interface `key-value`.
pub mod kv {
    wasmtime::component::bindgen!({
        path: "wit/spin-key-value.wit",
        world: "key-value-host",
        imports: { default: trappable },
        with: {
            "fermyon:spin/key-value.store": crate::kv::StoreHandle,
        },
    });
}
