//! Google Cloud Translation v2 (basic): `POST {mt_url}/language/translate/v2?key=<key>` with JSON
//! `{"q": [...], "source": "en", "target": "es", "format": "text"}`; the answer is
//! `data.translations[0].translatedText`. The key travels in the URL, so every error message is
//! redacted against it (raw and percent-encoded).

use std::time::Instant;

use serde::Deserialize;

use super::{ProviderError, ProviderResult, join_url, redact, send_checked};
use crate::config::Config;
use crate::http::{HttpClient, HttpRequest, Method};

/// Largest translation response accepted.
pub const MAX_RESPONSE: usize = 256 << 10;

/// Google language code: lower-case base language, or a BCP-47 tag Google lists (`zh-TW`).
pub fn lang_code(lang: &str) -> ProviderResult<String> {
    let l = lang.trim().replace('_', "-");
    let ok = (2..=7).contains(&l.len()) && l.chars().all(|c| c.is_ascii_alphabetic() || c == '-');
    if !ok {
        return Err(ProviderError::Language(lang.chars().take(16).collect()));
    }
    let mut parts = l.splitn(2, '-');
    let base = parts.next().unwrap_or_default().to_ascii_lowercase();
    Ok(match parts.next() {
        Some(region) => format!("{base}-{}", region.to_ascii_uppercase()),
        None => base,
    })
}

#[derive(Deserialize)]
struct Response {
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    translations: Vec<Translation>,
}

#[derive(Deserialize)]
struct Translation {
    #[serde(rename = "translatedText")]
    translated_text: String,
}

/// Parse a v2 `translate` response.
pub fn parse_response(body: &[u8]) -> ProviderResult<String> {
    let r: Response = serde_json::from_slice(body)
        .map_err(|_| ProviderError::BadResponse("not a Google translate response".into()))?;
    let t = r
        .data
        .translations
        .into_iter()
        .next()
        .ok_or_else(|| ProviderError::BadResponse("no translations".into()))?;
    Ok(t.translated_text.trim().to_string())
}

fn scrub(e: ProviderError, secrets: [Option<&str>; 2]) -> ProviderError {
    let clean = |m: String| secrets.iter().fold(m, |m, s| redact(&m, *s));
    match e {
        ProviderError::Transport(m) => ProviderError::Transport(clean(m)),
        ProviderError::BadResponse(m) => ProviderError::BadResponse(clean(m)),
        other => other,
    }
}

/// Translate `text` from `source` to `target` (ISO 639-1) with Google Translate v2.
pub fn translate<H: HttpClient + ?Sized>(
    http: &H,
    cfg: &Config,
    text: &str,
    source: &str,
    target: &str,
    deadline: Instant,
) -> ProviderResult<String> {
    super::check_mt_text(text)?;
    let body = serde_json::json!({
        "q": [text],
        "source": lang_code(source)?,
        "target": lang_code(target)?,
        "format": "text",
    });
    let key = cfg.mt_key();
    let mut url = join_url(&cfg.mt_url, "/language/translate/v2");
    let encoded = key.map(|k| {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("key", k)
            .finish()
    });
    if let Some(q) = &encoded {
        url = format!("{url}?{q}");
    }
    let encoded_key = encoded.as_deref().and_then(|q| q.strip_prefix("key="));
    let req = HttpRequest {
        method: Method::Post,
        url,
        headers: vec![
            (
                "content-type".to_string(),
                "application/json; charset=utf-8".to_string(),
            ),
            ("accept".into(), "application/json".into()),
        ],
        body: body.to_string().into_bytes(),
    };
    let resp = send_checked(http, &req, deadline, MAX_RESPONSE, key)
        .map_err(|e| scrub(e, [key, encoded_key]))?;
    parse_response(&resp.body)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::MtProvider;
    use crate::http::{FetchLimits, HttpError, HttpResponse};
    use crate::testutil::{Reply, StdHttpClient, TestServer, refused_url, test_config};

    #[test]
    fn sends_the_documented_json_with_the_key_in_the_query() {
        let server = TestServer::start(|req| {
            let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
            let key_ok = req.query() == [("key".to_string(), "AIza-test_KEY".to_string())];
            if req.method != "POST" || req.path != "/language/translate/v2" || !key_ok {
                return Reply::json(
                    400,
                    r#"{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT"}}"#,
                );
            }
            let src = v["q"][0].as_str().unwrap_or("");
            Reply::json(
                200,
                &serde_json::json!({"data": {"translations": [{"translatedText": src.replace("cat", "gato")}]}})
                    .to_string(),
            )
        });
        let mut cfg = test_config();
        cfg.mt_provider = MtProvider::Google;
        cfg.mt_url = server.url();
        cfg.api_key = Some("AIza-test_KEY".into());
        let dl = Instant::now() + Duration::from_secs(5);
        let out = crate::providers::translate(&StdHttpClient, &cfg, "the cat & me", "en", "es", dl)
            .unwrap();
        assert_eq!(out, "the gato & me");
        let req = &server.requests()[0];
        let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"q": ["the cat & me"], "source": "en", "target": "es", "format": "text"})
        );
        assert!(req.header("authorization").is_none());
        assert_eq!(lang_code("zh_tw").unwrap(), "zh-TW");
        assert!(matches!(lang_code("e/s"), Err(ProviderError::Language(_))));
        assert!(matches!(
            parse_response(br#"{"data":{"translations":[]}}"#),
            Err(ProviderError::BadResponse(_))
        ));
    }

    /// A client whose error text quotes the whole request URL, as some HTTP stacks do.
    struct UrlQuotingClient;
    impl HttpClient for UrlQuotingClient {
        fn send(&self, req: &HttpRequest, _: &FetchLimits) -> Result<HttpResponse, HttpError> {
            Err(HttpError::Connect(format!("could not reach {}", req.url)))
        }
    }

    #[test]
    fn errors_never_contain_the_key() {
        let key = "AIza+SECRET/42=";
        let server = TestServer::start(|req| {
            let q = req.raw_query.clone().unwrap_or_default();
            if req.path.starts_with("/ok/") {
                return Reply::json(200, &format!(r#"{{"data": "{q}"}}"#));
            }
            Reply::json(403, &format!(r#"{{"error":{{"message":"bad {q}"}}}}"#))
        });
        let mut cfg = test_config();
        cfg.mt_key = Some(key.into());
        let dl = Instant::now() + Duration::from_secs(5);
        let encoded = "AIza%2BSECRET%2F42%3D";
        for url in [server.url(), format!("{}/ok", server.url()), refused_url()] {
            cfg.mt_url = url;
            let err = translate(&StdHttpClient, &cfg, "hello", "en", "es", dl).unwrap_err();
            let s = format!("{err} {err:?}");
            assert!(!s.contains(key) && !s.contains(encoded), "{s}");
        }
        assert_eq!(server.request_count(), 2);
        assert_eq!(
            server.requests()[0].query()[0].1,
            key,
            "the key arrives intact"
        );

        cfg.mt_url = "http://translate.invalid".into();
        let err = translate(&UrlQuotingClient, &cfg, "hello", "en", "es", dl).unwrap_err();
        let s = format!("{err} {err:?}");
        assert!(matches!(err, ProviderError::Transport(_)), "{s}");
        assert!(!s.contains("SECRET"), "{s}");
        assert!(s.contains("/language/translate/v2?key=***"), "{s}");
    }
}
