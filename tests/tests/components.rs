//! The built components have the worlds the design fixes: the media component exports every
//! `dub:media` interface; the edge component imports them and exports the WASI HTTP handler
//! that Spin and dubhost call. Checked with `wasm-tools component wit` on `build/*.wasm`.

use std::process::Command;

fn wit_of(file: &str) -> String {
    let path = dub_tests::artifacts().repo.join("build").join(file);
    assert!(
        path.exists(),
        "{} is missing: run `make components`",
        path.display()
    );
    let out = Command::new("wasm-tools")
        .args(["component", "wit"])
        .arg(&path)
        .output()
        .expect("wasm-tools (installed by `make setup`)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 WIT")
}

const MEDIA: [&str; 6] = ["types", "validate", "demux", "resample", "mix", "remux"];

#[test]
fn media_component_exports_dub_media() {
    let wit = wit_of("dub_media.wasm");
    for i in MEDIA {
        let line = format!("export dub:media/{i}@0.1.0;");
        assert!(wit.contains(&line), "missing `{line}` in:\n{wit}");
    }
    // A library component: no HTTP, no filesystem, no sockets.
    for banned in ["wasi:http", "wasi:filesystem", "wasi:sockets"] {
        assert!(!wit.contains(banned), "media component imports {banned}");
    }
}

#[test]
fn edge_component_imports_dub_media_and_exports_the_http_handler() {
    let wit = wit_of("dub_edge.wasm");
    for i in MEDIA {
        let line = format!("import dub:media/{i}@0.1.0;");
        assert!(wit.contains(&line), "missing `{line}` in:\n{wit}");
    }
    assert!(
        wit.contains("export wasi:http/incoming-handler@0.2.0;"),
        "{wit}"
    );
    assert!(
        wit.contains("import fermyon:spin/variables@2.0.0;"),
        "{wit}"
    );
    assert!(wit.contains("import wasi:http/outgoing-handler@"), "{wit}");
}
