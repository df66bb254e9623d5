//! Mail the host sends itself: password-reset links and invitations.
//!
//! [`Mailer`] has two implementations: [`SmtpMailer`] (through `lettre`, over rustls) when
//! `[auth.smtp]` is configured, and [`LogMailer`] otherwise, which writes the message to the log at
//! warn level so a development site works without a mail server.

use std::future::Future;
use std::pin::Pin;

use anyhow::Context;
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::SmtpConfig;

/// One plain-text message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

/// Sends mail.
pub trait Mailer: Send + Sync + std::fmt::Debug {
    fn send(&self, mail: Mail) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + '_>>;
}

/// The development mailer: logs each message instead of sending it.
#[derive(Debug, Default)]
pub struct LogMailer;

impl Mailer for LogMailer {
    fn send(&self, mail: Mail) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + '_>> {
        tracing::warn!(
            to = %mail.to,
            subject = %mail.subject,
            body = %mail.body,
            "no SMTP server is configured ([auth.smtp]); this mail was logged instead of sent"
        );
        Box::pin(async { Ok(()) })
    }
}

/// Sends through an SMTP server.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    pub fn new(config: &SmtpConfig) -> anyhow::Result<Self> {
        let from: Mailbox = config.from.parse().with_context(|| {
            format!(
                "[auth.smtp] from = '{}' is not a mail address (e.g. 'UCMS <noreply@example.com>')",
                config.from
            )
        })?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(&config.url)
            .with_context(|| {
                format!(
                    "[auth.smtp] url = '{}' is not an SMTP URL (smtps://HOST:PORT or smtp://HOST:PORT)",
                    config.url
                )
            })?;
        if let (Some(user), Some(password)) = (&config.user, &config.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }
}

impl Mailer for SmtpMailer {
    fn send(&self, mail: Mail) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + '_>> {
        Box::pin(async move {
            let to: Mailbox = mail
                .to
                .parse()
                .with_context(|| format!("'{}' is not a mail address", mail.to))?;
            let message = Message::builder()
                .from(self.from.clone())
                .to(to)
                .subject(mail.subject)
                .header(ContentType::TEXT_PLAIN)
                .body(mail.body)?;
            self.transport
                .send(message)
                .await
                .context("the SMTP server refused the message")?;
            Ok(())
        })
    }
}

/// The mailer `[auth.smtp]` asks for.
pub fn from_config(smtp: Option<&SmtpConfig>) -> anyhow::Result<std::sync::Arc<dyn Mailer>> {
    Ok(match smtp {
        Some(config) => std::sync::Arc::new(SmtpMailer::new(config)?),
        None => std::sync::Arc::new(LogMailer),
    })
}
