//! Provider response bodies, through each adapter's real path: the adapters parse inside their
//! `complete` (response parsing is private), so the input is served by a loopback HTTP server
//! and every adapter is called as the runner calls it. Slower per input than a direct call, but
//! it covers status classification, body limits and secret scrubbing too.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Mutex, OnceLock};

use echo_core::provider::{CompletionRequest, MAX_SOURCES_PER_ANSWER, Provider, source_url};
use echo_core::secret::Secret;
use echo_providers::{
    AnthropicConfig, AnthropicProvider, GeminiConfig, GeminiProvider, OpenAiCompatibleConfig,
    OpenAiCompatibleProvider, OpenAiConfig, OpenAiProvider, PerplexityConfig, PerplexityProvider,
};

/// Long enough to be scrubbed; must never appear in an error.
const API_KEY: &str = "sk-fuzz-3c5b0e8f7d2a4196SECRET";

/// Statuses a provider may answer with; 200 weighs most since its body is parsed as a success.
const STATUSES: [u16; 16] = [
    200, 200, 200, 200, 200, 200, 201, 301, 400, 401, 402, 403, 404, 429, 500, 529,
];

struct Harness {
    runtime: tokio::runtime::Runtime,
    providers: Vec<Box<dyn Provider>>,
    response: &'static Mutex<(u16, Vec<u8>)>,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        static RESPONSE: Mutex<(u16, Vec<u8>)> = Mutex::new((200, Vec::new()));
        let listener = match TcpListener::bind("127.0.0.1:0") {
            Ok(l) => l,
            Err(e) => panic!("cannot bind the loopback server: {e}"),
        };
        let base = match listener.local_addr() {
            Ok(a) => format!("http://{a}"),
            Err(e) => panic!("no local address: {e}"),
        };
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                // A broken connection is the client's business; keep serving.
                let _ = serve(stream, &RESPONSE);
            }
        });
        let key = || Secret::new(API_KEY);
        let mut openai = OpenAiConfig::new(key());
        openai.base_url = base.clone();
        let mut anthropic = AnthropicConfig::new(key());
        anthropic.base_url = base.clone();
        let mut gemini = GeminiConfig::new(key());
        gemini.base_url = base.clone();
        let mut perplexity = PerplexityConfig::new(key());
        perplexity.base_url = base.clone();
        // The search variants parse other shapes (Responses output, grounding, web search
        // blocks); the plain ones stay first so committed corpus inputs keep their adapter.
        let openai_search = OpenAiConfig {
            base_url: base.clone(),
            ..OpenAiConfig::new(key())
        }
        .with_web_search(true);
        let anthropic_search = AnthropicConfig {
            base_url: base.clone(),
            ..AnthropicConfig::new(key())
        }
        .with_web_search(true);
        let gemini_search = GeminiConfig {
            base_url: base.clone(),
            ..GeminiConfig::new(key())
        }
        .with_google_search(true);
        let mut compatible = OpenAiCompatibleConfig::new(base);
        compatible.api_key = Some(key());
        let built: Vec<Result<Box<dyn Provider>, echo_providers::BuildError>> = vec![
            OpenAiProvider::new(openai).map(|p| Box::new(p) as Box<dyn Provider>),
            AnthropicProvider::new(anthropic).map(|p| Box::new(p) as Box<dyn Provider>),
            GeminiProvider::new(gemini).map(|p| Box::new(p) as Box<dyn Provider>),
            PerplexityProvider::new(perplexity).map(|p| Box::new(p) as Box<dyn Provider>),
            OpenAiCompatibleProvider::new(compatible).map(|p| Box::new(p) as Box<dyn Provider>),
            OpenAiProvider::new(openai_search).map(|p| Box::new(p) as Box<dyn Provider>),
            AnthropicProvider::new(anthropic_search).map(|p| Box::new(p) as Box<dyn Provider>),
            GeminiProvider::new(gemini_search).map(|p| Box::new(p) as Box<dyn Provider>),
        ];
        let providers = match built.into_iter().collect::<Result<Vec<_>, _>>() {
            Ok(p) => p,
            Err(e) => panic!("cannot build the providers: {e}"),
        };
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => panic!("no runtime: {e}"),
        };
        Harness {
            runtime,
            providers,
            response: &RESPONSE,
        }
    })
}

/// Reads one request (headers and `Content-Length` body) and answers with the current response.
fn serve(stream: TcpStream, response: &Mutex<(u16, Vec<u8>)>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let (status, payload) = match response.lock() {
        Ok(r) => r.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status} Fuzz\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        payload.len()
    )?;
    out.write_all(&payload)?;
    out.flush()
}

/// Each adapter's response handling: any status and body gives a completion or an error,
/// never a panic; a completion has a non-blank answer and at most
/// `MAX_SOURCES_PER_ANSWER` distinct citations, each an absolute http(s) URL whose spans lie
/// inside the answer on character boundaries; a non-2xx status is always an error; no error
/// shows the API key.
///
/// Input: byte 0 picks the adapter, byte 1 the status, the rest is the body.
pub fn check_provider_response(data: &[u8]) {
    let [which, status, body @ ..] = data else {
        return;
    };
    let h = harness();
    let provider = &h.providers[usize::from(*which) % h.providers.len()];
    let status = STATUSES[usize::from(*status) % STATUSES.len()];
    match h.response.lock() {
        Ok(mut r) => *r = (status, body.to_vec()),
        Err(poisoned) => *poisoned.into_inner() = (status, body.to_vec()),
    }
    let request = CompletionRequest {
        prompt: "Best CRM?".to_owned(),
        model: "m".to_owned(),
        temperature: 0.0,
        max_tokens: Some(16),
        system_prompt: None,
        sample_index: 0,
    };
    let result = h.runtime.block_on(provider.complete(&request));
    match result {
        Ok(completion) => {
            assert!(
                (200..300).contains(&status),
                "HTTP {status} became a completion"
            );
            assert!(!completion.text.trim().is_empty(), "blank answer accepted");
            let mut seen = std::collections::HashSet::new();
            assert!(completion.citations.iter().all(|c| seen.insert(&c.url)));
            assert!(completion.citations.len() <= MAX_SOURCES_PER_ANSWER);
            for source in &completion.citations {
                assert_eq!(source_url(&source.url).as_deref(), Some(source.url.as_str()));
                assert!(
                    source.spans.iter().all(|s| s.is_valid_in(&completion.text)),
                    "span outside the answer: {source:?}"
                );
            }
        }
        Err(e) => {
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains(API_KEY), "error shows the API key: {shown}");
        }
    }
}
