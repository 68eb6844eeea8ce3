//! Mailing one-time PINs over SMTP (`--smtp-url`), with `lettre`.
//!
//! `smtp://host:port` sends in clear (a local relay), `smtp://host:port?tls=required` upgrades
//! with STARTTLS, `smtps://host:465` is TLS from the start; credentials go in the URL's user and
//! password (`smtp://user:password@host`). The URL is never logged: it may hold a password.

use std::future::Future;
use std::pin::Pin;

use anyhow::Context as _;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use portico_app::sign_in::{Mailer, PinMail};

/// Mails PINs through one SMTP server.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer").field("from", &self.from.to_string()).finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// A mailer for `url`, sending as `from` (`Portico <portico@example.com>`).
    pub fn new(url: &str, from: &str) -> anyhow::Result<Self> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            // lettre's message names the part of the URL that is wrong, never the password.
            .map_err(|e| anyhow::anyhow!("--smtp-url is not a usable SMTP URL: {e}"))?
            .build();
        let from =
            from.parse().with_context(|| format!("--smtp-from `{from}` is not a mailbox"))?;
        Ok(SmtpMailer { transport, from })
    }
}

impl Mailer for SmtpMailer {
    fn send<'a>(
        &'a self,
        mail: &'a PinMail,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let to: Mailbox = mail.to.parse().map_err(|e| format!("invalid address: {e}"))?;
            let message = Message::builder()
                .from(self.from.clone())
                .to(to)
                .subject(format!("Your sign-in code for {}", mail.portal_name))
                .body(format!(
                    "Your code to sign in to {} is {}.\n\nIt is valid for 10 minutes. If you did not ask for it, ignore this message.\n",
                    mail.portal_name, mail.code.0
                ))
                .map_err(|e| format!("the message could not be built: {e}"))?;
            self.transport.send(message).await.map(|_| ()).map_err(|e| e.to_string())
        })
    }
}
