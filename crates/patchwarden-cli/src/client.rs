//! The CLI as a client of a server: how to reach it (`--server`, `--token`, `--ca`), requests
//! with the server's errors shown as they are, and listings as JSON, CSV or a table.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args as ClapArgs, ValueEnum};

/// How to reach a server as a user.
#[derive(ClapArgs, Clone)]
pub struct ServerConnection {
    /// The server (`https://host:8443`); without it the commands read the local store.
    #[arg(long, global = true, env = "PATCHWARDEN_SERVER")]
    pub server: Option<String>,
    /// A user API token.
    #[arg(long, global = true, env = "PATCHWARDEN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The server's CA certificate (PEM; the server keeps it as `ca.pem` in its state directory
    /// and serves it at /v1/ca.pem).
    #[arg(long, global = true, env = "PATCHWARDEN_CA")]
    pub ca: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Json,
    Csv,
}

pub(crate) struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    pub(crate) fn new(c: &ServerConnection) -> anyhow::Result<Client> {
        let base = c.server.clone().context("--server is required")?;
        let token = c
            .token
            .clone()
            .context("--token (or PATCHWARDEN_TOKEN) is required with --server")?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(120));
        if let Some(ca) = &c.ca {
            let pem = std::fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("{}: not a PEM certificate", ca.display()))?;
            builder = builder.tls_certs_only([cert]);
        }
        Ok(Client {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http: builder.build()?,
        })
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Vec<u8>> {
        let response = request.bearer_auth(&self.token).send().await?;
        let status = response.status();
        let body = response.bytes().await?.to_vec();
        if !status.is_success() {
            let message = serde_json::from_slice::<patchwarden_model::fleet::ApiError>(&body)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
            bail!("{}: {status}: {message}", self.base);
        }
        Ok(body)
    }

    pub(crate) async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> anyhow::Result<T> {
        let body = self
            .send(self.http.get(format!("{}{path}", self.base)))
            .await?;
        serde_json::from_slice(&body).with_context(|| format!("{}{path}: the answer", self.base))
    }

    /// POSTs `value` as JSON; the answer parsed.
    pub(crate) async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        value: &impl serde::Serialize,
    ) -> anyhow::Result<T> {
        self.send_json(reqwest::Method::POST, path, value).await
    }

    /// PUTs `value` as JSON; the answer parsed.
    pub(crate) async fn put<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        value: &impl serde::Serialize,
    ) -> anyhow::Result<T> {
        self.send_json(reqwest::Method::PUT, path, value).await
    }

    /// PATCHes `value` as JSON; the answer parsed.
    pub(crate) async fn patch<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        value: &impl serde::Serialize,
    ) -> anyhow::Result<T> {
        self.send_json(reqwest::Method::PATCH, path, value).await
    }

    /// DELETEs `path`; the answer parsed.
    pub(crate) async fn delete<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> anyhow::Result<T> {
        let body = self
            .send(self.http.delete(format!("{}{path}", self.base)))
            .await?;
        serde_json::from_slice(&body).with_context(|| format!("{}{path}: the answer", self.base))
    }

    async fn send_json<T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        value: &impl serde::Serialize,
    ) -> anyhow::Result<T> {
        let request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(value)?);
        let body = self.send(request).await?;
        serde_json::from_slice(&body).with_context(|| format!("{}{path}: the answer", self.base))
    }
}

pub(crate) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `s` with control characters (C0, DEL, C1: terminal escapes, tabs, line breaks) and
/// bidirectional formatting characters written as `\u{…}` escapes.
pub(crate) fn printable(s: &str) -> String {
    let bidi = patchwarden_model::is_bidi_control;
    if !s.chars().any(|c| c.is_control() || bidi(c)) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_control() || bidi(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Quotes a CSV field when it needs it.
pub(crate) fn csv(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// A listing as JSON (the items themselves), CSV (quoted where needed) or a tab-separated table.
pub(crate) fn write_listing<T: serde::Serialize>(
    out: &mut impl Write,
    format: OutputFormat,
    items: &[T],
    header: &[&str],
    row: impl Fn(&T) -> Vec<String>,
) -> anyhow::Result<()> {
    if format == OutputFormat::Json {
        serde_json::to_writer_pretty(&mut *out, items)?;
        writeln!(out)?;
        return Ok(());
    }
    // Host-provided strings (hostnames, OS names, labels) reach a terminal: control and
    // bidirectional characters are shown escaped, never sent (an escape sequence could forge a row).
    let (sep, quote): (&str, fn(&str) -> String) = match format {
        OutputFormat::Csv => (",", |f| csv(&printable(f))),
        _ => ("\t", printable),
    };
    writeln!(out, "{}", header.join(sep))?;
    for item in items {
        let fields: Vec<String> = row(item).iter().map(|f| quote(f)).collect();
        writeln!(out, "{}", fields.join(sep))?;
    }
    Ok(())
}

#[cfg(test)]
mod printable_tests {
    use super::*;

    #[test]
    fn host_strings_cannot_forge_table_rows() {
        let rows = vec![("evil\u{1b}[2K\r1\tgood-host\nnext\u{202e}txt".to_owned(),)];
        for format in [OutputFormat::Table, OutputFormat::Csv] {
            let mut out = Vec::new();
            write_listing(&mut out, format, &rows, &["hostname"], |r| {
                vec![r.0.clone()]
            })
            .unwrap();
            let text = String::from_utf8(out).unwrap();
            assert_eq!(text.lines().count(), 2, "{text:?}");
            assert!(
                !text.contains(['\u{1b}', '\r', '\t', '\u{202e}']),
                "{text:?}"
            );
            assert!(
                text.contains("evil\\u{1b}[2K\\u{d}1\\u{9}good-host\\u{a}next\\u{202e}txt"),
                "{text:?}"
            );
        }
    }
}
