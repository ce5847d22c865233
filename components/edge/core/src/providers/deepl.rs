//! DeepL translation: `POST {mt_url}/v2/translate` with JSON
//! `{"text": [...], "source_lang": "EN", "target_lang": "ES"}` and
//! `Authorization: DeepL-Auth-Key <key>`; the answer is `translations[0].text`.

use std::time::Instant;

use serde::Deserialize;

use super::{ProviderError, ProviderResult, join_url, send_checked};
use crate::config::Config;
use crate::http::{HttpClient, HttpRequest, Method};

/// Largest translation response accepted.
pub const MAX_RESPONSE: usize = 256 << 10;

fn valid_code(lang: &str) -> ProviderResult<String> {
    let l = lang.trim();
    let ok = (2..=7).contains(&l.len()) && l.chars().all(|c| c.is_ascii_alphabetic() || c == '-');
    if !ok {
        return Err(ProviderError::Language(lang.chars().take(16).collect()));
    }
    Ok(l.replace('_', "-").to_ascii_uppercase())
}

/// DeepL `source_lang`: the base language, upper-case (`en-US` → `EN`).
pub fn source_code(lang: &str) -> ProviderResult<String> {
    let code = valid_code(lang)?;
    Ok(code.split('-').next().unwrap_or_default().to_string())
}

/// DeepL `target_lang`: upper-case; the bare `EN`/`PT` DeepL deprecates become `EN-US`/`PT-PT`,
/// regional codes (`en-GB`, `pt-BR`) pass through.
pub fn target_code(lang: &str) -> ProviderResult<String> {
    let code = valid_code(lang)?;
    Ok(match code.as_str() {
        "EN" => "EN-US".into(),
        "PT" => "PT-PT".into(),
        _ => code,
    })
}

#[derive(Deserialize)]
struct Response {
    translations: Vec<Translation>,
}

#[derive(Deserialize)]
struct Translation {
    text: String,
}

/// Parse a `/v2/translate` response.
pub fn parse_response(body: &[u8]) -> ProviderResult<String> {
    let r: Response = serde_json::from_slice(body)
        .map_err(|_| ProviderError::BadResponse("not a DeepL translate response".into()))?;
    let t = r
        .translations
        .into_iter()
        .next()
        .ok_or_else(|| ProviderError::BadResponse("no translations".into()))?;
    Ok(t.text.trim().to_string())
}

/// Translate `text` from `source` to `target` (ISO 639-1) with DeepL, failing at `deadline`.
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
        "text": [text],
        "source_lang": source_code(source)?,
        "target_lang": target_code(target)?,
    });
    let mut headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("accept".into(), "application/json".into()),
    ];
    if let Some(k) = cfg.mt_key() {
        headers.push(("authorization".into(), format!("DeepL-Auth-Key {k}")));
    }
    let req = HttpRequest {
        method: Method::Post,
        url: join_url(&cfg.mt_url, "/v2/translate"),
        headers,
        body: body.to_string().into_bytes(),
    };
    let resp = send_checked(http, &req, deadline, MAX_RESPONSE, cfg.mt_key())?;
    parse_response(&resp.body)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::MtProvider;
    use crate::testutil::{Reply, StdHttpClient, TestServer, refused_url, test_config};

    #[test]
    fn maps_language_codes() {
        assert_eq!(source_code("en").unwrap(), "EN");
        assert_eq!(source_code("en-GB").unwrap(), "EN");
        assert_eq!(target_code("es").unwrap(), "ES");
        assert_eq!(target_code("en").unwrap(), "EN-US");
        assert_eq!(target_code("pt-br").unwrap(), "PT-BR");
        assert!(matches!(
            target_code("e s"),
            Err(ProviderError::Language(_))
        ));
        assert!(matches!(target_code(""), Err(ProviderError::Language(_))));
    }

    #[test]
    fn sends_the_documented_json_and_reads_the_translation() {
        let server = TestServer::start(|req| {
            let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
            if req.method != "POST"
                || req.path != "/v2/translate"
                || req.header("authorization") != Some("DeepL-Auth-Key dl-KEY:fx")
                || v["target_lang"] != "ES"
            {
                return Reply::json(400, r#"{"message":"Bad request"}"#);
            }
            let src = v["text"][0].as_str().unwrap_or("");
            let out = src.replace("Good morning", "Buenos días");
            Reply::json(
                200,
                &serde_json::json!({"translations": [{"detected_source_language": "EN", "text": out}]})
                    .to_string(),
            )
        });
        let mut cfg = test_config();
        cfg.mt_provider = MtProvider::DeepL;
        cfg.mt_url = server.url();
        cfg.mt_key = Some("dl-KEY:fx".into());
        let dl = Instant::now() + Duration::from_secs(5);
        let out = crate::providers::translate(
            &StdHttpClient,
            &cfg,
            "Good morning, \"friend\".",
            "en",
            "es",
            dl,
        )
        .unwrap();
        assert_eq!(out, "Buenos días, \"friend\".");
        let req = &server.requests()[0];
        let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"text": ["Good morning, \"friend\"."], "source_lang": "EN", "target_lang": "ES"})
        );
        assert_eq!(req.header("content-type"), Some("application/json"));
        assert!(matches!(
            parse_response(br#"{"translations": []}"#),
            Err(ProviderError::BadResponse(_))
        ));
    }

    #[test]
    fn errors_never_contain_the_key() {
        let key = "dl-VERY-SECRET-5:fx";
        let server = TestServer::start(|req| {
            let auth = req.header("authorization").unwrap_or("").to_string();
            if req.path.starts_with("/ok/") {
                return Reply::json(200, &format!(r#"{{"translations": "{auth}"}}"#));
            }
            Reply::json(403, &format!(r#"{{"message":"Wrong key {auth}"}}"#))
        });
        let mut cfg = test_config();
        cfg.mt_key = Some(key.into());
        let dl = Instant::now() + Duration::from_secs(5);
        for url in [server.url(), format!("{}/ok", server.url()), refused_url()] {
            cfg.mt_url = url;
            let err = translate(&StdHttpClient, &cfg, "hello", "en", "es", dl).unwrap_err();
            assert!(!format!("{err} {err:?}").contains(key), "{err:?}");
        }
        assert_eq!(server.request_count(), 2);
    }
}
