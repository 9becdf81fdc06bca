//! `patchwarden audit verify|export` on the store: checks the audit log's hash chain and the
//! server's signed checkpoints (the keys pinned from server state directories or given as hex),
//! naming the first entry that was altered, removed or reordered; writes the log as JSON lines.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use patchwarden_model::audit::verify_chain;
use patchwarden_store::Store;

#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// Check the chain and its signed checkpoints; exit 1 naming the first break.
    Verify {
        /// A server state directory whose `audit-signing.pub` signs checkpoints (repeatable;
        /// default: this user's server state directory).
        #[arg(long)]
        state_dir: Vec<PathBuf>,
        /// A signing public key in hex (repeatable).
        #[arg(long)]
        public_key: Vec<String>,
    },
    /// Write every entry, then every checkpoint, as JSON lines (`{"entry": …}`,
    /// `{"checkpoint": …}`) to FILE (`-`: standard output).
    Export { file: PathBuf },
}

pub async fn audit(store: &Store, command: &AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify {
            state_dir,
            public_key,
        } => verify(store, state_dir, public_key).await,
        AuditCommand::Export { file } => export(store, file).await,
    }
}

async fn verify(
    store: &Store,
    state_dirs: &[PathBuf],
    public_keys: &[String],
) -> anyhow::Result<ExitCode> {
    let mut keys: Vec<String> = public_keys
        .iter()
        .map(|k| k.trim().to_lowercase())
        .collect();
    let dirs = if state_dirs.is_empty() && public_keys.is_empty() {
        vec![patchwarden_server::default_state_dir()]
    } else {
        state_dirs.to_vec()
    };
    for dir in &dirs {
        let path = dir.join(patchwarden_server::audit::PUBLIC_KEY_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read the audit signing key {} (pass --state-dir or --public-key)",
                path.display()
            )
        })?;
        keys.push(text.trim().to_lowercase());
    }
    if keys
        .iter()
        .any(|k| k.len() != 64 || !k.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        bail!("a public key is not 64 hex digits: {keys:?}");
    }
    let entries = store.audit_chain().await?;
    let checkpoints = store.audit_checkpoints().await?;
    match verify_chain(&entries, &checkpoints, |c| {
        patchwarden_server::audit::verify_signature(c, &keys)
    }) {
        Ok(report) => {
            let signed = report
                .signed_through
                .map(|s| format!("signed through entry {s}"))
                .unwrap_or_else(|| "no checkpoint yet".into());
            let unsigned = entries.len() as i64 - report.signed_through.unwrap_or(0);
            println!(
                "audit log intact: {} entries, {} checkpoints, {signed}{} (store: {})",
                report.entries,
                report.checkpoints,
                if unsigned > 0 {
                    format!("; the last {unsigned} entries are held by the chain alone")
                } else {
                    String::new()
                },
                store.location()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(broken) => {
            eprintln!("audit log BROKEN: {broken}");
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn export(store: &Store, file: &PathBuf) -> anyhow::Result<ExitCode> {
    let entries = store.audit_chain().await?;
    let checkpoints = store.audit_checkpoints().await?;
    let mut out: Box<dyn Write> = if file.as_os_str() == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::io::BufWriter::new(
            std::fs::File::create(file)
                .with_context(|| format!("cannot write {}", file.display()))?,
        ))
    };
    for e in &entries {
        serde_json::to_writer(&mut out, &serde_json::json!({ "entry": e }))?;
        out.write_all(b"\n")?;
    }
    for c in &checkpoints {
        serde_json::to_writer(&mut out, &serde_json::json!({ "checkpoint": c }))?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    if file.as_os_str() != "-" {
        eprintln!(
            "wrote {} entries and {} checkpoints to {}",
            entries.len(),
            checkpoints.len(),
            file.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
