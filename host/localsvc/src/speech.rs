//! The local speech service: OpenAI-compatible STT and TTS, Apertium APy-compatible MT.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::CONTENT_TYPE;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{OnceCell, Semaphore};

use crate::http::{BodyError, Resp, form_pairs, json as json_resp, read_body, response};
use crate::multipart::parse_multipart;
use crate::pocketsphinx::{Utterance, parse_pocketsphinx};
use crate::process::{ProcError, TempDir, run};
use crate::wav;

/// Largest transcription upload (OpenAI's own limit).
pub const MAX_UPLOAD: usize = 25 * 1024 * 1024;
/// Largest TTS input, in characters (OpenAI's limit).
pub const MAX_TTS_CHARS: usize = 4096;
/// Largest JSON body for TTS.
const MAX_TTS_BODY: usize = 64 * 1024;
/// Largest text to translate, in bytes.
const MAX_MT_BYTES: usize = 256 * 1024;
/// Longest audio transcribed (ffmpeg cuts the rest).
const MAX_STT_SECS: u32 = 600;
/// Cap on any engine's stdout (WAV/PCM output goes to files, capped by duration instead).
const MAX_STDOUT: usize = 8 * 1024 * 1024;
/// The OpenAI voice names, all mapped to [`SpeechOptions::default_voice`].
const OPENAI_VOICES: &[&str] = &[
    "alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse",
    "marin", "cedar",
];

/// Configuration of the speech service.
#[derive(Debug, Clone)]
pub struct SpeechOptions {
    /// espeak-ng voice used for OpenAI voice names (`alloy`, `nova`, …). Default `"es"`.
    pub default_voice: String,
    /// Engine runs allowed at once. Default 2.
    pub max_concurrency: usize,
    /// Deadline for each engine run. Default 60 s.
    pub timeout: Duration,
    /// pocketsphinx model directory (holds `en-us/`, `en-us.lm.bin`, `cmudict-en-us.dict`).
    /// Default `/usr/share/pocketsphinx/model/en-us`.
    pub pocketsphinx_model_dir: PathBuf,
    /// Where Apertium's installed modes live. Default `/usr/share/apertium/modes`.
    pub apertium_modes_dir: PathBuf,
    /// pocketsphinx `-vad_threshold` (its default is 2.0). Default 3.5: measured on the sample's
    /// 6 s segments (speech over a music bed 20 dB down), 2.0 starts every utterance in the music
    /// and fills it with junk words (11/36 words right); 3.5 gets 18/36 and correct start times.
    pub vad_threshold: f32,
}

impl Default for SpeechOptions {
    fn default() -> Self {
        Self {
            default_voice: "es".into(),
            max_concurrency: 2,
            timeout: Duration::from_secs(60),
            pocketsphinx_model_dir: "/usr/share/pocketsphinx/model/en-us".into(),
            apertium_modes_dir: "/usr/share/apertium/modes".into(),
            vad_threshold: 3.5,
        }
    }
}

/// Serves the speech service on `listener` until the task is dropped.
pub async fn serve_speech(listener: TcpListener, opts: SpeechOptions) -> anyhow::Result<()> {
    let svc = Arc::new(SpeechService::new(opts));
    crate::http::serve(
        listener,
        svc,
        |req, svc| async move { svc.handle(req).await },
    )
    .await
}

/// The speech service's state and router; [`SpeechService::handle`] needs no socket.
#[derive(Debug)]
pub struct SpeechService {
    opts: SpeechOptions,
    engines: Semaphore,
    voices: OnceCell<Voices>,
}

#[derive(Debug, Default)]
struct Voices {
    languages: HashSet<String>,
    variants: HashSet<String>,
}

/// An error reported in the OpenAI shape.
struct ApiError {
    status: StatusCode,
    message: String,
    param: Option<&'static str>,
    code: Option<&'static str>,
}

fn bad(
    param: Option<&'static str>,
    code: Option<&'static str>,
    message: impl Into<String>,
) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        message: message.into(),
        param,
        code,
    }
}

fn internal(what: &str, e: impl std::fmt::Display) -> ApiError {
    // Details (paths, stderr) go to the log only.
    eprintln!("dub-localsvc: {what}: {e}");
    ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message: format!("{what} failed"),
        param: None,
        code: Some("engine_error"),
    }
}

fn openai_error(e: ApiError) -> Resp {
    let kind = if e.status.is_server_error() {
        "server_error"
    } else {
        "invalid_request_error"
    };
    json_resp(
        e.status,
        &json!({"error": {"message": e.message, "type": kind, "param": e.param, "code": e.code}}),
    )
}

fn apy_error(status: StatusCode, explanation: &str) -> Resp {
    // APy's own error body, plus the responseStatus/responseDetails keys of its success shape so
    // clients that only look at those still see the failure.
    json_resp(
        status,
        &json!({
            "status": "error",
            "code": status.as_u16(),
            "message": status.canonical_reason().unwrap_or("Error"),
            "explanation": explanation,
            "responseData": null,
            "responseDetails": explanation,
            "responseStatus": status.as_u16(),
        }),
    )
}

fn body_error(e: BodyError, limit: usize) -> ApiError {
    match e {
        BodyError::TooLarge => ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("request body larger than {limit} bytes"),
            param: None,
            code: Some("request_too_large"),
        },
        BodyError::Read => bad(None, None, "could not read the request body"),
    }
}

fn engine_error(what: &str, e: ProcError) -> ApiError {
    internal(what, e)
}

impl SpeechService {
    /// Creates the service; engines are looked up lazily on first use.
    pub fn new(opts: SpeechOptions) -> Self {
        let engines = Semaphore::new(opts.max_concurrency.max(1));
        Self {
            opts,
            engines,
            voices: OnceCell::new(),
        }
    }

    /// Answers one request.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let path = req.uri().path().to_owned();
        match (req.method(), path.as_str()) {
            (&Method::GET, "/healthz") => response(StatusCode::OK, "text/plain", "ok\n"),
            (&Method::POST, "/v1/audio/transcriptions") => {
                self.transcribe(req).await.unwrap_or_else(openai_error)
            }
            (&Method::POST, "/v1/audio/speech") => {
                self.speak(req).await.unwrap_or_else(openai_error)
            }
            (&Method::GET | &Method::POST, "/translate") => self.translate(req).await,
            (&Method::GET, "/listPairs") => self.list_pairs().await,
            (_, p) if p.starts_with("/v1/") => openai_error(ApiError {
                status: StatusCode::NOT_FOUND,
                message: format!("unknown endpoint {} {p}", req.method()),
                param: None,
                code: Some("unknown_url"),
            }),
            _ => response(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
        }
    }

    // ---------- STT ----------

    async fn transcribe<B>(&self, req: Request<B>) -> Result<Resp, ApiError>
    where
        B: hyper::body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let ct = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = read_body(req.into_body(), MAX_UPLOAD)
            .await
            .map_err(|e| body_error(e, MAX_UPLOAD))?;
        let parts = parse_multipart(&ct, &body).map_err(|e| bad(None, None, e.to_string()))?;
        let mut file = None;
        let mut language = None;
        let mut format = "json".to_owned();
        let mut granularities = Vec::new();
        for p in &parts {
            let text = || String::from_utf8_lossy(p.data).trim().to_owned();
            match p.name.as_str() {
                "file" => file = Some(p.data),
                "language" => language = Some(text()),
                "response_format" => format = text(),
                "timestamp_granularities[]" | "timestamp_granularities" => {
                    granularities.push(text())
                }
                _ => {} // model, prompt, temperature: accepted and ignored
            }
        }
        let file =
            file.ok_or_else(|| bad(Some("file"), None, "missing required parameter 'file'"))?;
        if file.is_empty() {
            return Err(bad(Some("file"), None, "the uploaded file is empty"));
        }
        if let Some(l) = language.as_deref().filter(|l| !l.is_empty())
            && !matches!(
                l.to_ascii_lowercase().as_str(),
                "en" | "en-us" | "en_us" | "english"
            )
        {
            return Err(bad(
                Some("language"),
                Some("unsupported_language"),
                format!("language '{l}' is not supported by this server; only 'en' is"),
            ));
        }
        if !matches!(format.as_str(), "json" | "text" | "verbose_json") {
            return Err(bad(
                Some("response_format"),
                Some("unsupported_value"),
                format!(
                    "response_format '{format}' is not supported; use json, text or verbose_json"
                ),
            ));
        }
        for g in &granularities {
            if g != "word" && g != "segment" {
                return Err(bad(
                    Some("timestamp_granularities[]"),
                    None,
                    format!("unknown granularity '{g}'"),
                ));
            }
        }
        let (utts, duration) = self.recognize(file).await?;
        let text = utts
            .iter()
            .map(Utterance::text)
            .collect::<Vec<_>>()
            .join(" ");
        Ok(match format.as_str() {
            "text" => response(
                StatusCode::OK,
                "text/plain; charset=utf-8",
                format!("{text}\n"),
            ),
            "json" => json_resp(StatusCode::OK, &json!({ "text": text })),
            _ => {
                // Without granularities both are returned (a superset of OpenAI's default).
                let all = granularities.is_empty();
                let want = |g: &str| all || granularities.iter().any(|x| x == g);
                let mut v = json!({
                    "task": "transcribe",
                    "language": "english",
                    "duration": round3(duration),
                    "text": text,
                });
                if want("word") {
                    v["words"] = utts
                        .iter()
                        .flat_map(|u| &u.words)
                        .map(|w| json!({"word": w.word, "start": round3(w.start), "end": round3(w.end)}))
                        .collect();
                }
                if want("segment") {
                    v["segments"] = utts
                        .iter()
                        .enumerate()
                        .map(|(i, u)| segment_json(i, u))
                        .collect();
                }
                json_resp(StatusCode::OK, &v)
            }
        })
    }

    /// Decodes any audio ffmpeg reads to 16 kHz mono, runs pocketsphinx, returns utterances and duration.
    async fn recognize(&self, audio: &[u8]) -> Result<(Vec<Utterance>, f64), ApiError> {
        let _permit = self
            .engines
            .acquire()
            .await
            .map_err(|e| internal("scheduler", e))?;
        let tmp = TempDir::new("dub-stt").map_err(|e| internal("temp dir", e))?;
        let input = tmp.path().join("input");
        let decoded = tmp.path().join("decoded.wav");
        let wav16 = tmp.path().join("speech16k.wav");
        tokio::fs::write(&input, audio)
            .await
            .map_err(|e| internal("temp file", e))?;
        let t = self.opts.timeout;
        // Only audio containers; no playlists or concat lists that could reach other files.
        let max_secs = MAX_STT_SECS.to_string();
        let args: Vec<&std::ffi::OsStr> = vec![
            "-nostdin".as_ref(),
            "-hide_banner".as_ref(),
            "-loglevel".as_ref(),
            "error".as_ref(),
            "-protocol_whitelist".as_ref(),
            "file".as_ref(),
            "-format_whitelist".as_ref(),
            "wav,mp3,flac,ogg,mov,matroska,aac,w64,aiff,caf,mpeg".as_ref(),
            "-i".as_ref(),
            input.as_os_str(),
            "-vn".as_ref(),
            "-t".as_ref(),
            max_secs.as_ref(),
            "-ac".as_ref(),
            "1".as_ref(),
            "-ar".as_ref(),
            "16000".as_ref(),
            "-c:a".as_ref(),
            "pcm_s16le".as_ref(),
            "-f".as_ref(),
            "wav".as_ref(),
            "-y".as_ref(),
            decoded.as_os_str(),
        ];
        run("ffmpeg", &args, None, t, MAX_STDOUT)
            .await
            .map_err(|e| match e {
                ProcError::Failed(..) => {
                    eprintln!("dub-localsvc: decode: {e}");
                    bad(
                        Some("file"),
                        Some("invalid_audio"),
                        "could not decode the uploaded audio",
                    )
                }
                e => engine_error("audio decode", e),
            })?;
        // No dither (-D): pocketsphinx is sensitive enough to dither noise that results would vary
        // run to run. Peak-normalise: measured on espeak-ng speech, pocketsphinx does better at -10 dBFS than at full scale.
        let args: Vec<&std::ffi::OsStr> = vec![
            "-q".as_ref(),
            "-D".as_ref(),
            decoded.as_os_str(),
            "-b".as_ref(),
            "16".as_ref(),
            wav16.as_os_str(),
            "gain".as_ref(),
            "-n".as_ref(),
            "-10".as_ref(),
        ];
        run("sox", &args, None, t, MAX_STDOUT)
            .await
            .map_err(|e| engine_error("audio normalise", e))?;
        let head = tokio::fs::read(&wav16)
            .await
            .map_err(|e| internal("temp file", e))?;
        let duration = wav::parse(&head).map(|i| i.duration_secs()).unwrap_or(0.0);
        let m = &self.opts.pocketsphinx_model_dir;
        let (hmm, lm, dict) = (
            m.join("en-us"),
            m.join("en-us.lm.bin"),
            m.join("cmudict-en-us.dict"),
        );
        let vad = format!("{:.2}", self.opts.vad_threshold.clamp(0.0, 20.0));
        let args: Vec<&std::ffi::OsStr> = vec![
            "-vad_threshold".as_ref(),
            vad.as_ref(),
            "-infile".as_ref(),
            wav16.as_os_str(),
            "-time".as_ref(),
            "yes".as_ref(),
            "-logfn".as_ref(),
            "/dev/null".as_ref(),
            "-hmm".as_ref(),
            hmm.as_os_str(),
            "-lm".as_ref(),
            lm.as_os_str(),
            "-dict".as_ref(),
            dict.as_os_str(),
        ];
        let out = run("pocketsphinx_continuous", &args, None, t, MAX_STDOUT)
            .await
            .map_err(|e| engine_error("speech recognition", e))?;
        Ok((
            parse_pocketsphinx(&String::from_utf8_lossy(&out.stdout)),
            duration,
        ))
    }

    // ---------- TTS ----------

    async fn speak<B>(&self, req: Request<B>) -> Result<Resp, ApiError>
    where
        B: hyper::body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let body = read_body(req.into_body(), MAX_TTS_BODY)
            .await
            .map_err(|e| body_error(e, MAX_TTS_BODY))?;
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| bad(None, None, format!("invalid JSON body: {e}")))?;
        let input = v
            .get("input")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(Some("input"), None, "missing required parameter 'input'"))?;
        if input.trim().is_empty() {
            return Err(bad(Some("input"), None, "'input' is empty"));
        }
        if input.chars().count() > MAX_TTS_CHARS {
            return Err(bad(
                Some("input"),
                Some("string_above_max_length"),
                format!("'input' is longer than {MAX_TTS_CHARS} characters"),
            ));
        }
        let format = v
            .get("response_format")
            .and_then(Value::as_str)
            .unwrap_or("wav");
        if format != "wav" && format != "pcm" {
            return Err(bad(
                Some("response_format"),
                Some("unsupported_value"),
                format!(
                    "response_format '{format}' is not supported by this server; use wav or pcm"
                ),
            ));
        }
        let speed = match v.get("speed") {
            None | Some(Value::Null) => 1.0,
            Some(s) => s
                .as_f64()
                .ok_or_else(|| bad(Some("speed"), None, "'speed' must be a number"))?,
        };
        if !(0.25..=4.0).contains(&speed) {
            return Err(bad(
                Some("speed"),
                None,
                "'speed' must be between 0.25 and 4.0",
            ));
        }
        let voice = v.get("voice").and_then(Value::as_str).unwrap_or("alloy");
        let voice = self.resolve_voice(voice).await?;
        // espeak-ng accepts 80..=450 words per minute; 175 is its (and our 1.0×) default.
        let wpm = ((175.0 * speed).round() as u32).clamp(80, 450).to_string();

        let _permit = self
            .engines
            .acquire()
            .await
            .map_err(|e| internal("scheduler", e))?;
        let tmp = TempDir::new("dub-tts").map_err(|e| internal("temp dir", e))?;
        let out_wav = tmp.path().join("speech.wav");
        let t = self.opts.timeout;
        // Text goes through stdin, so it can never be read as an option.
        let args: Vec<&std::ffi::OsStr> = vec![
            "-v".as_ref(),
            voice.as_ref(),
            "-s".as_ref(),
            wpm.as_ref(),
            "-b".as_ref(),
            "1".as_ref(),
            "-w".as_ref(),
            out_wav.as_os_str(),
            "--stdin".as_ref(),
        ];
        run("espeak-ng", &args, Some(input.as_bytes()), t, MAX_STDOUT)
            .await
            .map_err(|e| engine_error("speech synthesis", e))?;
        if format == "wav" {
            let bytes = tokio::fs::read(&out_wav)
                .await
                .map_err(|e| internal("temp file", e))?;
            return Ok(response(StatusCode::OK, "audio/wav", bytes));
        }
        // OpenAI's pcm: raw 24 kHz, 16-bit signed little-endian, mono.
        let out_pcm = tmp.path().join("speech.pcm");
        let args: Vec<&std::ffi::OsStr> = vec![
            "-q".as_ref(),
            "-D".as_ref(),
            out_wav.as_os_str(),
            "-r".as_ref(),
            "24000".as_ref(),
            "-c".as_ref(),
            "1".as_ref(),
            "-b".as_ref(),
            "16".as_ref(),
            "-e".as_ref(),
            "signed-integer".as_ref(),
            "-L".as_ref(),
            "-t".as_ref(),
            "raw".as_ref(),
            out_pcm.as_os_str(),
        ];
        run("sox", &args, None, t, MAX_STDOUT)
            .await
            .map_err(|e| engine_error("resample", e))?;
        let bytes = tokio::fs::read(&out_pcm)
            .await
            .map_err(|e| internal("temp file", e))?;
        Ok(response(StatusCode::OK, "audio/pcm", bytes))
    }

    /// Maps an OpenAI or espeak-ng voice name to a validated espeak-ng voice.
    async fn resolve_voice(&self, voice: &str) -> Result<String, ApiError> {
        let voice = voice.trim();
        if OPENAI_VOICES.contains(&voice.to_ascii_lowercase().as_str()) {
            return Ok(self.opts.default_voice.clone());
        }
        let unknown = || {
            bad(
                Some("voice"),
                Some("unsupported_value"),
                format!(
                    "unknown voice '{voice}'; use an OpenAI voice name or an espeak-ng language such as es, en, fr, de"
                ),
            )
        };
        let ok_chars = !voice.is_empty()
            && voice.len() <= 64
            && !voice.starts_with(['-', '+'])
            && voice
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'+' || b == b'_');
        if !ok_chars {
            return Err(unknown());
        }
        let voices = self.voices().await;
        let (base, variant) = match voice.split_once('+') {
            Some((b, v)) => (b, Some(v)),
            None => (voice, None),
        };
        let base_l = base.to_ascii_lowercase();
        let prefix = format!("{base_l}-");
        let base_ok = voices.languages.contains(&base_l)
            || voices.languages.iter().any(|l| l.starts_with(&prefix));
        let variant_ok = variant.is_none_or(|v| voices.variants.contains(&v.to_ascii_lowercase()));
        if base_ok && variant_ok {
            Ok(voice.to_owned())
        } else {
            Err(unknown())
        }
    }

    async fn voices(&self) -> &Voices {
        self.voices
            .get_or_init(|| async {
                let t = self.opts.timeout;
                let mut v = Voices::default();
                match run("espeak-ng", &["--voices"], None, t, MAX_STDOUT).await {
                    Ok(o) => {
                        v.languages = voice_column(&o.stdout, 1, |s| Some(s.to_ascii_lowercase()))
                    }
                    Err(e) => eprintln!("dub-localsvc: listing voices: {e}"),
                }
                if let Ok(o) = run("espeak-ng", &["--voices=variant"], None, t, MAX_STDOUT).await {
                    v.variants = voice_column(&o.stdout, 4, |s| {
                        s.strip_prefix("!v/").map(str::to_ascii_lowercase)
                    });
                }
                v
            })
            .await
    }

    // ---------- MT ----------

    async fn translate<B>(&self, req: Request<B>) -> Resp
    where
        B: hyper::body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let mut params = form_pairs(req.uri().query().unwrap_or("").as_bytes());
        if req.method() == Method::POST {
            match read_body(req.into_body(), MAX_MT_BYTES * 4).await {
                Ok(b) => params.extend(form_pairs(&b)),
                Err(BodyError::TooLarge) => {
                    return apy_error(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large");
                }
                Err(BodyError::Read) => {
                    return apy_error(StatusCode::BAD_REQUEST, "Could not read the request body");
                }
            }
        }
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let Some(langpair) = get("langpair") else {
            return apy_error(StatusCode::BAD_REQUEST, "Missing argument langpair");
        };
        let Some(q) = get("q") else {
            return apy_error(StatusCode::BAD_REQUEST, "Missing argument q");
        };
        if q.len() > MAX_MT_BYTES {
            return apy_error(StatusCode::BAD_REQUEST, "Text too long");
        }
        // APy marks unknown words with '*' by default; the dubbing pipeline feeds TTS, so the default here is no marks.
        let mark_unknown = get("markUnknown")
            .is_some_and(|m| matches!(m.to_ascii_lowercase().as_str(), "yes" | "true" | "1"));
        let Some((src, tgt)) = langpair.split_once('|') else {
            return apy_error(
                StatusCode::BAD_REQUEST,
                "That pair is invalid, use e.g. eng|spa",
            );
        };
        let valid = |s: &str| {
            !s.is_empty()
                && s.len() <= 16
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        };
        if !valid(src) || !valid(tgt) {
            return apy_error(
                StatusCode::BAD_REQUEST,
                "That pair is invalid, use e.g. eng|spa",
            );
        }
        let mode = format!("{src}-{tgt}");
        if !self.installed_pairs().await.contains(&mode) {
            return apy_error(StatusCode::BAD_REQUEST, "That pair is not installed");
        }
        let Ok(_permit) = self.engines.acquire().await else {
            return apy_error(StatusCode::SERVICE_UNAVAILABLE, "internal error");
        };
        let mut args = vec![];
        if !mark_unknown {
            args.push("-u");
        }
        args.push(mode.as_str());
        match run(
            "apertium",
            &args,
            Some(q.as_bytes()),
            self.opts.timeout,
            MAX_STDOUT,
        )
        .await
        {
            Ok(out) => {
                let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
                // apertium ends its output with a newline the input did not have.
                while text.ends_with('\n') && !q.ends_with('\n') {
                    text.pop();
                }
                json_resp(
                    StatusCode::OK,
                    &json!({"responseData": {"translatedText": text}, "responseDetails": null, "responseStatus": 200}),
                )
            }
            Err(e) => {
                eprintln!("dub-localsvc: translate: {e}");
                apy_error(StatusCode::SERVICE_UNAVAILABLE, "internal error")
            }
        }
    }

    /// Installed pair names (`eng-spa`), from the modes directory.
    async fn installed_pairs(&self) -> Vec<String> {
        let mut out = Vec::new();
        let Ok(mut rd) = tokio::fs::read_dir(&self.opts.apertium_modes_dir).await else {
            return out;
        };
        while let Ok(Some(e)) = rd.next_entry().await {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(pair) = name.strip_suffix(".mode") {
                // Pairs are src-tgt; debug modes like eng-spa-tagger have more dashes.
                if pair.split('-').count() == 2 && out.len() < 1000 {
                    out.push(pair.to_owned());
                }
            }
        }
        out.sort();
        out
    }

    async fn list_pairs(&self) -> Resp {
        let pairs: Vec<Value> = self
            .installed_pairs()
            .await
            .iter()
            .filter_map(|p| p.split_once('-'))
            .map(|(s, t)| json!({"sourceLanguage": s, "targetLanguage": t}))
            .collect();
        json_resp(
            StatusCode::OK,
            &json!({"responseData": pairs, "responseDetails": null, "responseStatus": 200}),
        )
    }
}

fn voice_column(out: &[u8], col: usize, f: impl Fn(&str) -> Option<String>) -> HashSet<String> {
    String::from_utf8_lossy(out)
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(col).and_then(&f))
        .collect()
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn segment_json(id: usize, u: &Utterance) -> Value {
    let start = u.words.first().map_or(0.0, |w| w.start);
    let end = u.words.last().map_or(0.0, |w| w.end);
    let n = u.words.len().max(1) as f64;
    let avg_logprob = u.words.iter().map(|w| w.prob.max(1e-6).ln()).sum::<f64>() / n;
    json!({
        "id": id,
        "seek": 0,
        "start": round3(start),
        "end": round3(end),
        "text": u.text(),
        "tokens": [],
        "temperature": 0.0,
        "avg_logprob": round3(avg_logprob),
        "compression_ratio": 1.0,
        "no_speech_prob": 0.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pocketsphinx::Word;

    #[test]
    fn segment_shape() {
        let u = Utterance {
            words: vec![
                Word {
                    word: "hello".into(),
                    start: 1.0,
                    end: 1.4,
                    prob: 1.0,
                },
                Word {
                    word: "world".into(),
                    start: 1.5,
                    end: 2.0,
                    prob: 0.5,
                },
            ],
        };
        let s = segment_json(3, &u);
        assert_eq!(s["id"], 3);
        assert_eq!(s["start"], 1.0);
        assert_eq!(s["end"], 2.0);
        assert_eq!(s["text"], "hello world");
        assert_eq!(s["avg_logprob"], round3(0.5f64.ln() / 2.0));
    }

    #[test]
    fn voice_listing_columns() {
        let out = b"Pty Language       Age/Gender VoiceName          File                 Other Languages\n 5  es              --/M      Spanish            roa/es\n 5  en-us           --/M      English_(America)  gmw/en-US            (en 3)\n";
        let l = voice_column(out, 1, |s| Some(s.to_ascii_lowercase()));
        assert!(l.contains("es") && l.contains("en-us") && l.len() == 2);
        let v = voice_column(b"h\n 5 variant --/F Alicia !v/Alicia\n", 4, |s| {
            s.strip_prefix("!v/").map(str::to_ascii_lowercase)
        });
        assert!(v.contains("alicia"));
    }
}
