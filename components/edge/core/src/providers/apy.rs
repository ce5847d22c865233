//! Apertium APy machine translation: `GET {mt_url}/translate?langpair=eng|spa&q=…&markUnknown=no`.

use std::time::Instant;

use serde::Deserialize;

use super::{ProviderError, ProviderResult, join_url, send_checked};
use crate::config::Config;
use crate::http::{HttpClient, HttpRequest, Method};

/// Largest translation response accepted.
pub const MAX_RESPONSE: usize = 256 << 10;
/// Longest source text sent in one request (bytes).
pub const MAX_INPUT: usize = 8 << 10;

/// ISO 639-1 → the ISO 639-3 code APy uses in `langpair`. Three-letter codes pass through.
pub fn apertium_code(lang: &str) -> ProviderResult<&'static str> {
    const MAP: [(&str, &str); 7] = [
        ("en", "eng"),
        ("es", "spa"),
        ("fr", "fra"),
        ("de", "deu"),
        ("it", "ita"),
        ("pt", "por"),
        ("ca", "cat"),
    ];
    let l = lang.trim().to_ascii_lowercase();
    MAP.iter()
        .find(|(two, three)| *two == l || *three == l)
        .map(|(_, three)| *three)
        .ok_or_else(|| ProviderError::Language(lang.chars().take(16).collect()))
}

/// Remove APy's unknown-word (`*`) and generation-error (`#`, `@`) marks at word starts.
pub fn strip_marks(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev: Option<char> = None;
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        let at_word_start = prev.is_none_or(|p| p.is_whitespace() || "¿¡(\"'«“-".contains(p));
        let before_word = it.peek().is_some_and(|n| !n.is_whitespace());
        if matches!(c, '*' | '#' | '@') && at_word_start && before_word {
            continue;
        }
        out.push(c);
        prev = Some(c);
    }
    out
}

#[derive(Deserialize)]
struct ApyResponse {
    #[serde(rename = "responseData")]
    response_data: Option<ResponseData>,
    #[serde(rename = "responseStatus")]
    response_status: Option<u16>,
}

#[derive(Deserialize)]
struct ResponseData {
    #[serde(rename = "translatedText")]
    translated_text: Option<String>,
}

/// Parse an APy `/translate` response and strip its marks.
pub fn parse_response(body: &[u8]) -> ProviderResult<String> {
    let r: ApyResponse = serde_json::from_slice(body)
        .map_err(|_| ProviderError::BadResponse("not an APy translate response".into()))?;
    match r.response_status {
        Some(200) => {}
        Some(s) => return Err(ProviderError::Status(s)),
        None => return Err(ProviderError::BadResponse("missing responseStatus".into())),
    }
    let text = r
        .response_data
        .and_then(|d| d.translated_text)
        .ok_or_else(|| ProviderError::BadResponse("missing translatedText".into()))?;
    Ok(strip_marks(&text).trim().to_string())
}

/// Translate `text` from `source` to `target` (ISO 639-1), failing at `deadline`.
pub fn translate<H: HttpClient + ?Sized>(
    http: &H,
    cfg: &Config,
    text: &str,
    source: &str,
    target: &str,
    deadline: Instant,
) -> ProviderResult<String> {
    super::check_mt_text(text)?;
    let pair = format!("{}|{}", apertium_code(source)?, apertium_code(target)?);
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("langpair", &pair)
        .append_pair("q", text)
        .append_pair("markUnknown", "no")
        .finish();
    let req = HttpRequest {
        method: Method::Get,
        url: format!("{}?{query}", join_url(&cfg.mt_url, "/translate")),
        headers: vec![("accept".into(), "application/json".into())],
        body: Vec::new(),
    };
    // APy has no auth; its URL carries no secret either.
    let resp = send_checked(http, &req, deadline, MAX_RESPONSE, cfg.mt_key())?;
    parse_response(&resp.body)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::testutil::{Reply, StdHttpClient, TestServer, test_config};

    #[test]
    fn maps_languages() {
        assert_eq!(apertium_code("en").unwrap(), "eng");
        assert_eq!(apertium_code("ES").unwrap(), "spa");
        assert_eq!(apertium_code("pt").unwrap(), "por");
        assert_eq!(apertium_code("cat").unwrap(), "cat");
        assert_eq!(
            apertium_code("xx"),
            Err(ProviderError::Language("xx".into()))
        );
    }

    #[test]
    fn strips_unknown_and_error_marks() {
        assert_eq!(
            strip_marks("*Sintel es #bueno y @mal"),
            "Sintel es bueno y mal"
        );
        assert_eq!(strip_marks("¿*Dónde está?"), "¿Dónde está?");
        assert_eq!(strip_marks("a * b email@x 5*3"), "a * b email@x 5*3");
    }

    #[test]
    fn parses_apy_shapes() {
        let ok = br#"{"responseData": {"translatedText": "*Hola mundo"}, "responseDetails": null, "responseStatus": 200}"#;
        assert_eq!(parse_response(ok).unwrap(), "Hola mundo");
        let err = br#"{"status": "error", "code": 400, "message": "Bad Request", "explanation": "That pair is not installed", "responseStatus": 400}"#;
        assert_eq!(parse_response(err), Err(ProviderError::Status(400)));
        assert!(matches!(
            parse_response(b"[]"),
            Err(ProviderError::BadResponse(_))
        ));
    }

    #[test]
    fn sends_langpair_and_text_as_apy_expects() {
        let server = TestServer::start(|req| {
            let q = req.query();
            let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            if req.method != "GET"
                || req.path != "/translate"
                || get("langpair").as_deref() != Some("eng|spa")
            {
                return Reply::json(400, r#"{"responseStatus": 400}"#);
            }
            let text = get("q")
                .unwrap_or_default()
                .replace("Hello", "*Hola")
                .replace("world", "mundo");
            Reply::json(
                200,
                &serde_json::json!({"responseData": {"translatedText": text}, "responseDetails": null, "responseStatus": 200})
                    .to_string(),
            )
        });
        let mut cfg = test_config();
        cfg.mt_url = server.url();
        let out = translate(
            &StdHttpClient,
            &cfg,
            "Hello world & more?",
            "en",
            "es",
            Instant::now() + Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(out, "Hola mundo & more?");
        let reqs = server.requests();
        let q = reqs[0].query();
        assert_eq!(
            q,
            [
                ("langpair".to_string(), "eng|spa".to_string()),
                ("q".into(), "Hello world & more?".into()),
                ("markUnknown".into(), "no".into())
            ]
        );
        assert!(reqs[0].header("authorization").is_none());
        // Unknown target: no request is made.
        let err = translate(
            &StdHttpClient,
            &cfg,
            "x",
            "en",
            "zz",
            Instant::now() + Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(matches!(err, ProviderError::Language(_)));
        assert_eq!(server.request_count(), 1);
    }
}
