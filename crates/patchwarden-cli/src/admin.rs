//! Local administration of a store: `enroll-token create`, `user create` (the rules are the
//! server's, `patchwarden_server::admin`), and `assets import` (to a server with `--server`).

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Subcommand;
use patchwarden_model::fleet::Role;
use patchwarden_store::Store;

use crate::client::{Client, ServerConnection};

/// `--expires 24h`: seconds from `s`, `m`, `h`, `d` suffixes (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (number, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a number with s, m, h or d"))?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (s, m, h, d)")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("{text:?}: too long"))
}

fn parse_labels(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    for pair in pairs {
        let Some((k, v)) = pair.split_once('=') else {
            bail!("--label {pair:?}: expected key=value");
        };
        if k.is_empty() {
            bail!("--label {pair:?}: empty key");
        }
        labels.insert(k.to_owned(), v.to_owned());
    }
    Ok(labels)
}

#[derive(Subcommand)]
pub enum EnrollTokenCommand {
    /// Create an enrollment token (printed once; the store keeps its digest).
    Create {
        /// Lifetime: `30m`, `24h`, `7d`.
        #[arg(long, default_value = "24h")]
        expires: String,
        /// How many hosts may enroll with it.
        #[arg(long, default_value_t = 1)]
        uses: i64,
        /// A label every host enrolled with it gets (`key=value`, repeatable).
        #[arg(long = "label")]
        labels: Vec<String>,
    },
}

pub async fn enroll_token(store: &Store, command: &EnrollTokenCommand) -> anyhow::Result<ExitCode> {
    let EnrollTokenCommand::Create {
        expires,
        uses,
        labels,
    } = command;
    let secs = parse_duration(expires).map_err(|e| anyhow::anyhow!("--expires {e}"))?;
    let labels = parse_labels(labels)?;
    let created =
        patchwarden_server::admin::create_enrollment_token(store, secs, *uses, &labels, "cli")
            .await
            .map_err(|e| anyhow::anyhow!("--{e}"))?;
    println!("{}", created.token);
    eprintln!("expires {}, {} use(s)", created.expires_at, created.uses);
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create an API user; prints its token once.
    Create {
        name: String,
        #[arg(long)]
        role: String,
    },
}

pub async fn user(store: &Store, command: &UserCommand) -> anyhow::Result<ExitCode> {
    let UserCommand::Create { name, role } = command;
    let role: Role = role
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--role: {e}"))?;
    let user = patchwarden_server::admin::create_user(store, name, role).await?;
    println!("{}", user.token);
    Ok(ExitCode::SUCCESS)
}

/// `patchwarden assets import FILE`: to the server (with --server) or the local store.
pub async fn assets_import(
    c: &ServerConnection,
    db: Option<&str>,
    file: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let assets = patchwarden_server::assets::parse(&file.display().to_string(), &text)
        .map_err(anyhow::Error::msg)?;
    let source = file.display().to_string();
    if c.server.is_some() {
        let client = Client::new(c)?;
        let _: patchwarden_model::fleet::AssetsAck = client
            .put(
                "/v1/assets",
                &patchwarden_model::fleet::AssetList {
                    source: source.clone(),
                    assets: assets.clone(),
                },
            )
            .await?;
    } else {
        let location = db
            .map(str::to_owned)
            .unwrap_or_else(patchwarden_store::default_location);
        let store = Store::open(&location).await?;
        store.replace_expected_assets(&assets, &source).await?;
        store.close().await;
    }
    println!(
        "{} expected hosts imported from {}",
        assets.len(),
        file.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations() {
        assert_eq!(super::parse_duration("24h"), Ok(86400));
        assert_eq!(super::parse_duration("90"), Ok(90));
        assert_eq!(super::parse_duration("7d"), Ok(604800));
        assert!(super::parse_duration("1w")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(super::parse_duration("h").is_err());
    }
}
