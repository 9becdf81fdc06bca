//! Administration: `enroll-token create` (local store), `user …` (create, list, role, disable,
//! enable, rotate, revoke: through the API with `--server`, else on the local store; the rules
//! are the server's, `patchwarden_server::admin`), and `assets import` (either way).

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Subcommand;
use patchwarden_model::fleet::{Role, UserInfo};
use patchwarden_store::Store;

use crate::client::{Client, OutputFormat, ServerConnection};

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
        /// The token's lifetime (`90d`, `12h`; default: until rotated or revoked).
        #[arg(long)]
        expires: Option<String>,
    },
    /// List users: id, name, role, who created them, disabled, token expiry.
    List {
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
    },
    /// Give user ID a new role (the last enabled admin keeps its role).
    Role { id: i64, role: String },
    /// Disable user ID: its token stops working (the last enabled admin cannot be disabled).
    Disable { id: i64 },
    /// Enable user ID again.
    Enable { id: i64 },
    /// A new token for user ID (printed once); the old one stops working.
    Rotate {
        id: i64,
        #[arg(long)]
        expires: Option<String>,
    },
    /// Revoke user ID's token (a rotation issues a new one).
    Revoke { id: i64 },
}

fn lifetime(expires: Option<&String>) -> anyhow::Result<Option<u64>> {
    expires
        .map(|e| parse_duration(e).map_err(|e| anyhow::anyhow!("--expires {e}")))
        .transpose()
}

/// `patchwarden user …`: through the API with `--server` (audited as the token's user), else on
/// the local store (audited as `system:cli`). The rules are the server's either way.
pub async fn user(
    c: &ServerConnection,
    db: Option<&str>,
    command: &UserCommand,
) -> anyhow::Result<ExitCode> {
    if c.server.is_some() {
        return user_remote(&Client::new(c)?, command).await;
    }
    let location = db
        .map(str::to_owned)
        .unwrap_or_else(patchwarden_store::default_location);
    let store = Store::open(&location).await?;
    let result = user_local(&store, command).await;
    store.close().await;
    result
}

async fn user_remote(client: &Client, command: &UserCommand) -> anyhow::Result<ExitCode> {
    use patchwarden_model::fleet::{TokenRequest, UserRequest, UserResponse, UserUpdate};
    match command {
        UserCommand::Create {
            name,
            role,
            expires,
        } => {
            let request = UserRequest {
                name: name.clone(),
                role: parse_role(role)?,
                expires_secs: lifetime(expires.as_ref())?,
            };
            let user: UserResponse = client.post("/v1/users", &request).await?;
            print_token(&user);
        }
        UserCommand::List { format } => {
            let users: Vec<UserInfo> = client.get("/v1/users").await?;
            print_users(&users, *format)?;
        }
        UserCommand::Role { id, role } => {
            let update = UserUpdate {
                role: Some(parse_role(role)?),
                disabled: None,
            };
            let user: UserInfo = client.patch(&format!("/v1/users/{id}"), &update).await?;
            print_users(&[user], OutputFormat::Table)?;
        }
        UserCommand::Disable { id } | UserCommand::Enable { id } => {
            let update = UserUpdate {
                role: None,
                disabled: Some(matches!(command, UserCommand::Disable { .. })),
            };
            let user: UserInfo = client.patch(&format!("/v1/users/{id}"), &update).await?;
            print_users(&[user], OutputFormat::Table)?;
        }
        UserCommand::Rotate { id, expires } => {
            let request = TokenRequest {
                expires_secs: lifetime(expires.as_ref())?,
            };
            let user: UserResponse = client
                .post(&format!("/v1/users/{id}/token"), &request)
                .await?;
            print_token(&user);
        }
        UserCommand::Revoke { id } => {
            let user: UserInfo = client.delete(&format!("/v1/users/{id}/token")).await?;
            print_users(&[user], OutputFormat::Table)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn user_local(store: &Store, command: &UserCommand) -> anyhow::Result<ExitCode> {
    use patchwarden_model::audit::{Actor, AuditAction, AuditEvent};
    use patchwarden_server::admin;
    let cli = || Actor::System { name: "cli".into() };
    let event = match command {
        UserCommand::Create {
            name,
            role,
            expires,
        } => {
            let user = admin::create_user(
                store,
                name,
                parse_role(role)?,
                lifetime(expires.as_ref())?,
                None,
            )
            .await?;
            println!("{}", user.token);
            AuditEvent::new(
                cli(),
                AuditAction::UserCreated,
                format!("user:{}", user.name),
            )
            .with("id", user.id.to_string())
            .with("role", user.role.as_str())
        }
        UserCommand::List { format } => {
            print_users(&store.users().await?, *format)?;
            return Ok(ExitCode::SUCCESS);
        }
        UserCommand::Role { id, .. } | UserCommand::Disable { id } | UserCommand::Enable { id } => {
            let update = patchwarden_model::fleet::UserUpdate {
                role: match command {
                    UserCommand::Role { role, .. } => Some(parse_role(role)?),
                    _ => None,
                },
                disabled: match command {
                    UserCommand::Disable { .. } => Some(true),
                    UserCommand::Enable { .. } => Some(false),
                    _ => None,
                },
            };
            let (before, after) = admin::update_user(store, *id, &update).await?;
            print_users(std::slice::from_ref(&after), OutputFormat::Table)?;
            AuditEvent::new(
                cli(),
                AuditAction::UserUpdated,
                format!("user:{}", after.name),
            )
            .with("id", id.to_string())
            .with("role.before", before.role.as_str())
            .with("role.after", after.role.as_str())
            .with("disabled.before", before.disabled_at.is_some().to_string())
            .with("disabled.after", after.disabled_at.is_some().to_string())
        }
        UserCommand::Rotate { id, expires } => {
            let user = admin::rotate_user_token(store, *id, lifetime(expires.as_ref())?).await?;
            println!("{}", user.token);
            AuditEvent::new(
                cli(),
                AuditAction::UserTokenRotated,
                format!("user:{}", user.name),
            )
            .with("id", id.to_string())
        }
        UserCommand::Revoke { id } => {
            let user = store
                .user(*id)
                .await?
                .with_context(|| format!("no user {id}"))?;
            store
                .revoke_user_token(*id, &patchwarden_model::now_rfc3339())
                .await?;
            eprintln!("the token of user {} ({id}) is revoked", user.name);
            AuditEvent::new(
                cli(),
                AuditAction::UserTokenRevoked,
                format!("user:{}", user.name),
            )
            .with("id", id.to_string())
        }
    };
    store
        .append_audit(&event, &patchwarden_model::now_rfc3339())
        .await?;
    Ok(ExitCode::SUCCESS)
}

fn parse_role(role: &str) -> anyhow::Result<Role> {
    role.parse()
        .map_err(|e: String| anyhow::anyhow!("--role: {e}"))
}

fn print_token(user: &patchwarden_model::fleet::UserResponse) {
    println!("{}", user.token);
    match &user.token_expires_at {
        Some(at) => eprintln!("user {} ({}): token expires {at}", user.name, user.id),
        None => eprintln!("user {} ({}): token does not expire", user.name, user.id),
    }
}

fn print_users(users: &[UserInfo], format: OutputFormat) -> anyhow::Result<()> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    crate::client::write_listing(
        &mut std::io::stdout().lock(),
        format,
        users,
        &[
            "id",
            "name",
            "role",
            "created_at",
            "created_by",
            "disabled_at",
            "token_expires_at",
            "token_revoked_at",
        ],
        |u| {
            vec![
                u.id.to_string(),
                u.name.clone(),
                u.role.as_str().to_owned(),
                u.created_at.clone(),
                u.created_by
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "-".into()),
                opt(&u.disabled_at),
                opt(&u.token_expires_at),
                opt(&u.token_revoked_at),
            ]
        },
    )
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
