//! [`SmtpMailer`]: echo-core's [`Mailer`] over SMTP (lettre, rustls), behind the `smtp`
//! feature. Configure it with `ECHO_SMTP_URL`, e.g. `smtps://user:password@mail.example.com`
//! (implicit TLS, port 465) or `smtp://user:password@mail.example.com?tls=required`
//! (STARTTLS, port 587); the password never appears in logs or `Debug`.

use std::fmt;

use async_trait::async_trait;
use echo_core::mail::{MailError, MailMessage, Mailer};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Sends mail through an SMTP relay.
#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

/// A bad SMTP setting (the message names it, never the password).
#[derive(Debug, thiserror::Error)]
#[error("invalid SMTP setting {setting}: {reason}")]
pub struct SmtpConfigError {
    /// `ECHO_SMTP_URL` or `privacy.mail_from`.
    pub setting: &'static str,
    /// What is wrong.
    pub reason: String,
}

impl SmtpMailer {
    /// A mailer for the relay at `url` (see the module docs) sending as `from`.
    pub fn from_url(url: &str, from: &str) -> Result<Self, SmtpConfigError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| SmtpConfigError {
                setting: "ECHO_SMTP_URL",
                // lettre's message describes the URL's shape, not its credentials.
                reason: e.to_string(),
            })?
            .build();
        Self::with_transport(transport, from)
    }

    /// A mailer over a plain, unauthenticated connection to `host:port`: for a relay on the
    /// same host or network segment, and for tests. Never across an untrusted network.
    pub fn plaintext(host: &str, port: u16, from: &str) -> Result<Self, SmtpConfigError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .build();
        Self::with_transport(transport, from)
    }

    fn with_transport(
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: &str,
    ) -> Result<Self, SmtpConfigError> {
        let from = from
            .parse()
            .map_err(|e: lettre::address::AddressError| SmtpConfigError {
                setting: "privacy.mail_from",
                reason: e.to_string(),
            })?;
        Ok(Self { transport, from })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, message: &MailMessage) -> Result<(), MailError> {
        let to: Mailbox = message
            .to
            .as_str()
            .parse()
            .map_err(|_| MailError::Invalid("the recipient is not a valid address"))?;
        let email = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(message.body.clone())
            .map_err(|_| MailError::Invalid("the message cannot be built"))?;
        self.transport
            .send(email)
            .await
            .map(|_| ())
            .map_err(|e| MailError::Io(std::io::Error::other(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    /// A minimal SMTP server on loopback that accepts one message and returns its DATA.
    async fn fake_relay() -> (u16, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let (read, mut write) = socket.into_split();
            let mut lines = BufReader::new(read).lines();
            write.write_all(b"220 fake ESMTP\r\n").await.unwrap();
            let mut data = String::new();
            let mut in_data = false;
            while let Some(line) = lines.next_line().await.unwrap() {
                if in_data {
                    if line == "." {
                        in_data = false;
                        write.write_all(b"250 queued\r\n").await.unwrap();
                    } else {
                        data.push_str(&line);
                        data.push('\n');
                    }
                    continue;
                }
                let verb = line.split(' ').next().unwrap_or("").to_ascii_uppercase();
                let reply: &[u8] = match verb.as_str() {
                    "EHLO" | "HELO" => b"250 fake\r\n",
                    "DATA" => {
                        in_data = true;
                        b"354 go ahead\r\n"
                    }
                    "QUIT" => {
                        write.write_all(b"221 bye\r\n").await.unwrap();
                        break;
                    }
                    _ => b"250 ok\r\n",
                };
                write.write_all(reply).await.unwrap();
            }
            data
        });
        (port, handle)
    }

    #[tokio::test]
    async fn a_message_reaches_the_relay() {
        let (port, relay) = fake_relay().await;
        let mailer =
            SmtpMailer::plaintext("127.0.0.1", port, "Echo <no-reply@echo.localhost>").unwrap();
        mailer
            .send(&MailMessage {
                to: echo_core::model::Email::parse("ada@example.com").unwrap(),
                subject: "Your Echo account will be deleted".into(),
                body: "Log in before the date to keep it.".into(),
            })
            .await
            .unwrap();
        drop(mailer);
        let data = relay.await.unwrap();
        assert!(data.contains("To: ada@example.com"), "{data}");
        assert!(data.contains("Subject: Your Echo account will be deleted"));
        assert!(data.contains("Log in before the date to keep it."));
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let e = SmtpMailer::from_url("not a url", "a@b.co").unwrap_err();
        assert_eq!(e.setting, "ECHO_SMTP_URL");
        let e = SmtpMailer::plaintext("localhost", 25, "not an address").unwrap_err();
        assert_eq!(e.setting, "privacy.mail_from");
        let debug = format!(
            "{:?}",
            SmtpMailer::from_url("smtps://user:hunter2@mail.example.com", "a@b.co").unwrap()
        );
        assert!(!debug.contains("hunter2"), "{debug}");
    }
}
