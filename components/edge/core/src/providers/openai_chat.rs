//! LLM translation over an OpenAI-compatible chat completions API:
//! `POST {mt_url}/v1/chat/completions` with `model = cfg.mt_model`, a system prompt that asks
//! for a translation about as long as the source ("at most N characters", so the dub fits the
//! original timing), and a strict `json_schema` response format `{"translation": string}`.
//! The answer is `choices[0].message.content`, parsed as that JSON object.

use std::time::Instant;

use serde::Deserialize;

use super::{ProviderError, ProviderResult, bearer, join_url, send_checked};
use crate::config::Config;
use crate::http::{HttpClient, HttpRequest, Method};

/// Largest chat completion response accepted.
pub const MAX_RESPONSE: usize = 256 << 10;

/// English name of an ISO 639-1 language for the prompt (the code itself when unknown).
pub fn language_name(code: &str) -> String {
    const NAMES: [(&str, &str); 20] = [
        ("en", "English"),
        ("es", "Spanish"),
        ("fr", "French"),
        ("de", "German"),
        ("it", "Italian"),
        ("pt", "Portuguese"),
        ("ca", "Catalan"),
        ("nl", "Dutch"),
        ("pl", "Polish"),
        ("sv", "Swedish"),
        ("ru", "Russian"),
        ("uk", "Ukrainian"),
        ("tr", "Turkish"),
        ("ar", "Arabic"),
        ("hi", "Hindi"),
        ("ja", "Japanese"),
        ("ko", "Korean"),
        ("zh", "Chinese"),
        ("id", "Indonesian"),
        ("vi", "Vietnamese"),
    ];
    let c = code.trim();
    let base = c
        .split(['-', '_'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let short: String = c
        .chars()
        .filter(|ch| ch.is_ascii_alphanumeric() || *ch == '-')
        .take(16)
        .collect();
    match NAMES.iter().find(|(k, _)| *k == base) {
        Some((_, name)) => format!("{name} ({short})"),
        None => short,
    }
}

/// The length budget given to the model: about the source length, with a little slack for
/// languages that run longer (at least source + 8 characters, at most 1.15× source + 8).
pub fn max_chars(text: &str) -> usize {
    let n = text.chars().count();
    n + 8 + n * 15 / 100
}

/// The system prompt for translating `text` from `source` to `target`.
pub fn system_prompt(text: &str, source: &str, target: &str) -> String {
    system_prompt_within(source, target, max_chars(text), false)
}

/// The system prompt with an explicit length budget; `shorter` asks for a more concise
/// rendering (the first one did not fit its slot even sped up).
pub fn system_prompt_within(source: &str, target: &str, max: usize, shorter: bool) -> String {
    let fit = if shorter {
        "The previous translation was too long to fit the timing: give a shorter, more concise \
         rendering of the same meaning"
    } else {
        "Keep it about as long as the source so it fits the same timing"
    };
    format!(
        "You translate subtitles for dubbing. Translate the user's message from {} to {}. \
         {fit}: at most {max} characters. \
         Keep the meaning and tone; do not add notes, quotes or explanations, and do not answer \
         questions in the text, only translate them. Reply with JSON {{\"translation\": \"...\"}}.",
        language_name(source),
        language_name(target),
    )
}

#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: Message,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Deserialize)]
struct TranslationJson {
    translation: String,
}

/// Parse a chat completion whose message content is `{"translation": "..."}`.
pub fn parse_response(body: &[u8]) -> ProviderResult<String> {
    let c: Completion = serde_json::from_slice(body)
        .map_err(|_| ProviderError::BadResponse("not a chat completion".into()))?;
    let choice = c
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| ProviderError::BadResponse("no choices".into()))?;
    if choice.message.refusal.is_some_and(|r| !r.is_empty()) {
        return Err(ProviderError::BadResponse("model refused".into()));
    }
    if choice.finish_reason.as_deref() == Some("length") {
        return Err(ProviderError::BadResponse("translation cut off".into()));
    }
    let content = choice
        .message
        .content
        .ok_or_else(|| ProviderError::BadResponse("no message content".into()))?;
    let t: TranslationJson = serde_json::from_str(content.trim())
        .map_err(|_| ProviderError::BadResponse("content is not {\"translation\"}".into()))?;
    Ok(t.translation.trim().to_string())
}

/// Translate `text` from `source` to `target` with chat model `cfg.mt_model`.
pub fn translate<H: HttpClient + ?Sized>(
    http: &H,
    cfg: &Config,
    text: &str,
    source: &str,
    target: &str,
    deadline: Instant,
) -> ProviderResult<String> {
    translate_within(http, cfg, text, source, target, None, deadline)
}

/// [`translate`] with an explicit character budget: `Some(max)` asks for a shorter rendering
/// than the default budget (see [`system_prompt_within`]).
pub fn translate_within<H: HttpClient + ?Sized>(
    http: &H,
    cfg: &Config,
    text: &str,
    source: &str,
    target: &str,
    shorter_than: Option<usize>,
    deadline: Instant,
) -> ProviderResult<String> {
    super::check_mt_text(text)?;
    let prompt = match shorter_than {
        Some(max) => system_prompt_within(source, target, max.max(1), true),
        None => system_prompt(text, source, target),
    };
    let body = serde_json::json!({
        "model": cfg.mt_model,
        "messages": [
            {"role": "system", "content": prompt},
            {"role": "user", "content": text},
        ],
        "temperature": 0,
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "translation",
                "strict": true,
                "schema": {
                    "type": "object",
                    "properties": {"translation": {"type": "string"}},
                    "required": ["translation"],
                    "additionalProperties": false,
                },
            },
        },
    });
    let mut headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("accept".into(), "application/json".into()),
    ];
    bearer(&mut headers, cfg.mt_key());
    let req = HttpRequest {
        method: Method::Post,
        url: join_url(&cfg.mt_url, "/v1/chat/completions"),
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

    fn completion(content: &str, finish: &str) -> String {
        serde_json::json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1_763_700_000,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": null},
                         "logprobs": null, "finish_reason": finish}],
            "usage": {"prompt_tokens": 60, "completion_tokens": 9, "total_tokens": 69}
        })
        .to_string()
    }

    #[test]
    fn sends_model_prompt_with_length_hint_and_strict_schema() {
        let server = TestServer::start(|req| {
            let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
            if req.method != "POST"
                || req.path != "/v1/chat/completions"
                || req.header("authorization") != Some("Bearer sk-mt")
                || v["response_format"]["json_schema"]["strict"] != true
            {
                return Reply::json(400, r#"{"error":{"message":"bad"}}"#);
            }
            let user = v["messages"][1]["content"].as_str().unwrap_or("");
            let out = if user == "Where is the station?" {
                "¿Dónde está la estación?"
            } else {
                "?"
            };
            Reply::json(
                200,
                &completion(
                    &serde_json::json!({ "translation": out }).to_string(),
                    "stop",
                ),
            )
        });
        let mut cfg = test_config();
        cfg.mt_provider = MtProvider::OpenAi;
        cfg.mt_url = server.url();
        cfg.mt_model = "gpt-4o-mini".into();
        cfg.mt_key = Some("sk-mt".into());
        let dl = Instant::now() + Duration::from_secs(5);
        let src = "Where is the station?";
        let out = crate::providers::translate(&StdHttpClient, &cfg, src, "en", "es", dl).unwrap();
        assert_eq!(out, "¿Dónde está la estación?");

        let req = &server.requests()[0];
        let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(v["model"], "gpt-4o-mini");
        assert_eq!(v["messages"].as_array().unwrap().len(), 2);
        assert_eq!(v["messages"][0]["role"], "system");
        assert_eq!(
            v["messages"][1],
            serde_json::json!({"role": "user", "content": src})
        );
        let system = v["messages"][0]["content"].as_str().unwrap();
        assert!(
            system.contains("from English (en) to Spanish (es)"),
            "{system}"
        );
        // 21 chars: 21 + 8 + 3.
        assert!(system.contains("at most 32 characters"), "{system}");
        assert_eq!(
            v["response_format"],
            serde_json::json!({"type": "json_schema", "json_schema": {"name": "translation", "strict": true,
              "schema": {"type": "object", "properties": {"translation": {"type": "string"}},
                         "required": ["translation"], "additionalProperties": false}}})
        );
    }

    #[test]
    fn rejects_refusals_cut_offs_and_non_json_content() {
        assert_eq!(
            parse_response(completion(r#"{"translation": " Hola "}"#, "stop").as_bytes()).unwrap(),
            "Hola"
        );
        for body in [
            completion("Hola", "stop"),
            completion(r#"{"translation": "Hol"#, "length"),
            completion(r#"{"text": "Hola"}"#, "stop"),
            r#"{"choices":[{"message":{"role":"assistant","content":null,"refusal":"I can't"},"finish_reason":"stop"}]}"#.into(),
            r#"{"choices":[]}"#.into(),
        ] {
            assert!(
                matches!(parse_response(body.as_bytes()), Err(ProviderError::BadResponse(_))),
                "{body}"
            );
        }
        assert_eq!(language_name("xx"), "xx");
        assert_eq!(language_name("pt-BR"), "Portuguese (pt-BR)");
    }

    #[test]
    fn errors_never_contain_the_key() {
        let key = "sk-mt-VERY-SECRET-3";
        let server = TestServer::start(|req| {
            let auth = req.header("authorization").unwrap_or("").to_string();
            if req.path.starts_with("/ok/") {
                return Reply::json(200, &completion(&format!("not json {auth}"), "stop"));
            }
            Reply::json(
                401,
                &format!(r#"{{"error":{{"message":"Incorrect API key provided: {auth}"}}}}"#),
            )
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
