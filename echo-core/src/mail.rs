//! Outgoing mail: the [`Mailer`] trait and [`OutboxMailer`], which writes each message to a
//! local outbox directory as an RFC 5322 `.eml` file.
//!
//! Echo sends few messages (account-deletion confirmations, email verification, notices of
//! registration attempts), so a deployment either points a mail relay at the outbox or
//! implements [`Mailer`] over its provider's API. Messages hold no long-lived secret: never a
//! password or an API key. The one exception is the email-verification token, which must
//! reach the address to prove it: it works once, expires within a day, and is stored only as
//! a digest.

use std::fmt::Debug;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::model::{Email, Timestamp};

/// One plain-text message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailMessage {
    /// Recipient.
    pub to: Email,
    /// Subject line (one line).
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MailError {
    /// A header would contain a line break (header injection) or the message is empty.
    #[error("invalid message: {0}")]
    Invalid(&'static str),
    /// Writing or delivering failed.
    #[error("mail delivery failed")]
    Io(#[from] std::io::Error),
}

/// Sends mail.
///
/// # Contract
/// `send` returns once the message is durably handed over (written, or accepted by a relay);
/// it never logs the body. A failed send may be retried: implementations need not
/// deduplicate.
#[async_trait]
pub trait Mailer: Send + Sync + Debug + 'static {
    /// Hands `message` over for delivery.
    async fn send(&self, message: &MailMessage) -> Result<(), MailError>;
}

/// The trait object services hold: `Arc<DynMailer>`.
pub type DynMailer = dyn Mailer;

/// Writes each message to `dir` as `<time>-<uuid>.eml`, atomically (a temporary file renamed
/// into place), so a relay watching the directory never reads half a message.
///
/// ```
/// use echo_core::mail::{MailMessage, Mailer, OutboxMailer};
/// use echo_core::model::Email;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = std::env::temp_dir().join(format!("echo-outbox-doc-{}", std::process::id()));
/// let mailer = OutboxMailer::new(&dir, "Echo <no-reply@echo.localhost>");
/// mailer.send(&MailMessage {
///     to: Email::parse("ada@example.com")?,
///     subject: "Your account will be deleted".into(),
///     body: "…".into(),
/// }).await?;
/// assert_eq!(std::fs::read_dir(&dir)?.count(), 1);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct OutboxMailer {
    dir: PathBuf,
    from: String,
}

impl OutboxMailer {
    /// An outbox in `dir` (created on first send), with `from` as the sender.
    pub fn new(dir: impl AsRef<Path>, from: impl Into<String>) -> Self {
        Self {
            dir: dir.as_ref().to_path_buf(),
            from: from.into(),
        }
    }

    /// The outbox directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn header_safe(value: &str) -> bool {
    !value.contains(['\r', '\n'])
}

/// The message as RFC 5322 text (CRLF line ends, UTF-8 body declared as such).
pub fn render(
    from: &str,
    message: &MailMessage,
    at: Timestamp,
    id: &str,
) -> Result<String, MailError> {
    if !header_safe(from) || !header_safe(&message.subject) {
        return Err(MailError::Invalid("a header contains a line break"));
    }
    if message.subject.trim().is_empty() {
        return Err(MailError::Invalid("the subject is empty"));
    }
    let date = at
        .as_datetime()
        .format(&time::format_description::well_known::Rfc2822)
        .map_err(|_| MailError::Invalid("the date cannot be formatted"))?;
    let body = message.body.replace("\r\n", "\n").replace('\n', "\r\n");
    Ok(format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: <{id}@echo>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n",
        to = message.to.as_str(),
        subject = message.subject,
    ))
}

#[async_trait]
impl Mailer for OutboxMailer {
    async fn send(&self, message: &MailMessage) -> Result<(), MailError> {
        let now = Timestamp::now();
        let id = uuid::Uuid::now_v7().simple().to_string();
        let text = render(&self.from, message, now, &id)?;
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || -> Result<(), MailError> {
            std::fs::create_dir_all(&dir)?;
            let name = format!("{}-{id}.eml", now.unix_micros());
            let tmp = dir.join(format!(".{name}.tmp"));
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, dir.join(name))?;
            Ok(())
        })
        .await
        .map_err(|e| MailError::Io(std::io::Error::other(e)))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> MailMessage {
        MailMessage {
            to: Email::parse("ada@example.com").unwrap(),
            subject: "Hello".into(),
            body: "line one\nline two".into(),
        }
    }

    #[test]
    fn renders_headers_and_crlf_body() {
        let at = Timestamp::from_unix_micros(1_700_000_000_000_000).unwrap();
        let text = render("Echo <e@x.io>", &message(), at, "abc").unwrap();
        assert!(
            text.starts_with("From: Echo <e@x.io>\r\nTo: ada@example.com\r\nSubject: Hello\r\n")
        );
        assert!(text.contains("Message-ID: <abc@echo>\r\n"));
        assert!(text.ends_with("\r\n\r\nline one\r\nline two\r\n"));
    }

    #[test]
    fn header_injection_is_refused() {
        let mut m = message();
        m.subject = "Hi\r\nBcc: victim@example.com".into();
        assert!(render("e@x.io", &m, Timestamp::now(), "a").is_err());
        assert!(render("e@x.io\nBcc: x", &message(), Timestamp::now(), "a").is_err());
    }

    #[tokio::test]
    async fn outbox_writes_one_complete_file_per_message() {
        let dir = std::env::temp_dir().join(format!("echo-outbox-test-{}", uuid::Uuid::now_v7()));
        let mailer = OutboxMailer::new(&dir, "e@x.io");
        mailer.send(&message()).await.unwrap();
        mailer.send(&message()).await.unwrap();
        let files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 2);
        for f in &files {
            assert_eq!(f.extension().unwrap(), "eml");
            assert!(std::fs::read_to_string(f).unwrap().contains("line two"));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
