//! `dubhost inspect <file>...`: one JSON document describing each input (see
//! `dub_media::inspect`). An init segment followed by a media segment is inspected as a pair.
//!
//! Exit codes: 0 all inputs valid, 2 any invalid, 1 usage or I/O error (nothing printed on
//! stdout then).

use dub_media::inspect::{FileKind, Report, file_kind, inspect_file, inspect_pair};
use std::io::{Read, Write};

/// Usage text for `dubhost inspect --help`.
pub const USAGE: &str = "\
USAGE:
    dubhost inspect <FILE>...

Print a JSON array with one report per input: container, boxes or TS packets/PIDs, tracks,
codecs, timescales, fragments (sequence number, tfdt, sample count, duration), encryption and
a verdict {\"valid\", \"error\"}. An fMP4 init segment followed by a media segment is
inspected as one pair. Exit 0 if every input is valid, 2 if any is invalid, 1 on usage or
I/O errors.
";

/// Run `inspect` on its arguments; returns the process exit code.
pub fn run(args: &[String]) -> u8 {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{USAGE}");
        return 0;
    }
    let mut files = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if a == "--" {
            files.extend(args[i + 1..].iter().cloned());
            break;
        }
        if a.starts_with('-') && a.len() > 1 {
            eprintln!("dubhost inspect: unknown option `{a}`\n{USAGE}");
            return 1;
        }
        files.push(a.clone());
    }
    if files.is_empty() {
        eprintln!("dubhost inspect: no files given\n{USAGE}");
        return 1;
    }
    let mut data = Vec::with_capacity(files.len());
    for f in &files {
        match read_capped(f) {
            Ok(d) => data.push(d),
            Err(e) => {
                eprintln!("dubhost inspect: {f}: {e}");
                return 1;
            }
        }
    }
    let kinds: Vec<FileKind> = data.iter().map(|d| file_kind(d)).collect();
    let mut reports = Vec::new();
    let mut i = 0;
    while i < files.len() {
        let pair = kinds[i] == FileKind::Fmp4Init && kinds.get(i + 1) == Some(&FileKind::Fmp4Media);
        if pair {
            let r = guarded(|| inspect_pair(&data[i], &data[i + 1]));
            reports.push(r.map(|r| r.with_paths(&[&files[i], &files[i + 1]])));
            i += 2;
        } else {
            let r = guarded(|| inspect_file(&data[i]));
            reports.push(r.map(|r| r.with_paths(&[&files[i]])));
            i += 1;
        }
    }
    let mut out = String::from("[\n");
    let mut all_valid = true;
    for (n, r) in reports.iter().enumerate() {
        let text = match r {
            Ok(r) => {
                all_valid &= r.valid();
                r.to_json()
            }
            Err(json) => {
                all_valid = false;
                json.clone()
            }
        };
        out.push_str(&text);
        out.push_str(if n + 1 < reports.len() { ",\n" } else { "\n" });
    }
    out.push_str("]\n");
    let mut stdout = std::io::stdout().lock();
    if stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return 1;
    }
    if all_valid { 0 } else { 2 }
}

/// Read a file, at most one byte over the library's input limit (so the limit is reported
/// as a verdict instead of reading an arbitrarily large file).
fn read_capped(path: &str) -> std::io::Result<Vec<u8>> {
    let cap = dub_media::limits::MAX_INPUT_BYTES as u64 + 1;
    let mut d = Vec::new();
    std::fs::File::open(path)?.take(cap).read_to_end(&mut d)?;
    Ok(d)
}

/// Belt and braces: the library does not panic on any input (fuzzed), but a report must be
/// printed whatever happens, so a panic becomes an invalid verdict.
fn guarded(f: impl FnOnce() -> Report) -> Result<Report, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|_| {
        r#"{"verdict":{"valid":false,"error":"internal error: the inspector panicked"}}"#
            .to_string()
    })
}
