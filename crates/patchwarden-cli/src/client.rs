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
    let (sep, quote): (&str, fn(&str) -> String) = match format {
        OutputFormat::Csv => (",", csv),
        _ => ("\t", str::to_owned),
    };
    writeln!(out, "{}", header.join(sep))?;
    for item in items {
        let fields: Vec<String> = row(item).iter().map(|f| quote(f)).collect();
        writeln!(out, "{}", fields.join(sep))?;
    }
    Ok(())
}
