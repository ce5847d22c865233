//! HLS playlist parser + dubbing rewriter (dub-edge-core), as the router calls them.
#![no_main]

use dub_edge_core::hls::{self, Kind, RewriteCtx};
use dub_edge_core::media::Background;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(pl) = hls::parse(data) else { return };
    let origins = [
        "https://origin.example".to_string(),
        "http://127.0.0.1:8080".to_string(),
    ];
    let base = url::Url::parse("https://origin.example/path/to/master.m3u8").unwrap();
    let ctx = RewriteCtx {
        lang: "es",
        bg: Background::Duck,
        duck_db: Some(12.0),
        signing_key: b"fuzz-signing-key-0123456789abcdef",
        source_lang: "en",
        origins: &origins,
    };
    // The router: `rewrite` for /dub/{lang}/m3u8, `rewrite_media` for a media ref.
    if let Ok(out) = hls::rewrite(&pl, &base, &ctx) {
        assert_eq!(out.kind, pl.kind);
        // What we serve must parse again as the same kind of playlist.
        if out.text.len() <= hls::parse::MAX_PLAYLIST_BYTES {
            let again = hls::parse(out.text.as_bytes()).expect("rewritten playlist parses");
            assert_eq!(again.kind, pl.kind);
        }
    }
    if pl.kind == Kind::Media {
        let _ = hls::rewrite::rewrite_media(&pl, &base, &ctx);
    }
});
