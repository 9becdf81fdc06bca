//! `patchwarden`, the command-line interface: a thin layer that parses arguments, calls the library
//! crates and prints their results. No logic lives here that another front end (the server, the agent)
//! would need.

mod table;
mod vercmp;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "patchwarden",
    version,
    about = "Server patch management: inventory, vulnerabilities, deadlines, rollout"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Json,
    Table,
}

#[derive(Subcommand)]
enum Command {
    /// Inventory this host or a root filesystem: OS, packages, kernels, reboot state, platform.
    Inventory {
        /// Root directory of the system to inventory (a mounted image, a chroot); `/` is this host.
        #[arg(long, default_value = "/", env = "PATCHWARDEN_ROOT")]
        root: PathBuf,
        /// Output format: the versioned JSON report (docs/inventory-schema.md) or a table for people.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Compare package versions as dpkg, rpm or apk would; prints `<`, `=` or `>`.
    Vercmp(vercmp::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inventory { root, format } => inventory(&root, format),
        Command::Vercmp(args) => vercmp::run(&args),
    };
    match result {
        Ok(code) => code,
        // The reader went away (`| head`): stop quietly, as other command-line tools do.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn inventory(root: &std::path::Path, format: Format) -> anyhow::Result<ExitCode> {
    let inventory = patchwarden_inventory::collect(root)?;
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &inventory)?;
            use std::io::Write;
            writeln!(out)?;
        }
        Format::Table => table::write_inventory(&mut out, &inventory)?,
    }
    Ok(ExitCode::SUCCESS)
}
