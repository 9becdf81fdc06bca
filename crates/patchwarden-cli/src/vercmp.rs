//! `patchwarden vercmp`: one comparison from the arguments, or many from standard input with `--batch`
//! (lines `A<TAB>B`, one answer per line, in order). An invalid version prints `error: <reason>` on
//! its line and the command exits non-zero at the end. The batch mode is also the throughput benchmark.

use std::cmp::Ordering;
use std::io::{BufWriter, Read, Write};
use std::process::ExitCode;

use anyhow::{bail, Context};
use patchwarden_version::{compare, Scheme};

#[derive(clap::Args)]
pub struct Args {
    /// Version ordering: deb (dpkg), rpm or apk.
    #[arg(long)]
    scheme: Scheme,
    /// Read `A<TAB>B` lines from standard input.
    #[arg(long)]
    batch: bool,
    /// The two versions (without --batch).
    #[arg(num_args = 0..=2, allow_hyphen_values = true)]
    versions: Vec<String>,
}

fn symbol(o: Ordering) -> &'static str {
    match o {
        Ordering::Less => "<",
        Ordering::Equal => "=",
        Ordering::Greater => ">",
    }
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    if !args.batch {
        let [a, b] = args.versions.as_slice() else {
            bail!("give two versions, or --batch to read pairs from standard input")
        };
        println!("{}", symbol(compare(args.scheme, a, b)?));
        return Ok(ExitCode::SUCCESS);
    }
    if !args.versions.is_empty() {
        bail!(
            "--batch reads its pairs from standard input; do not also give versions as arguments"
        );
    }
    // Read everything, then answer line by line from the buffer: no allocation per line.
    let mut input = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut input)
        .context("reading standard input")?;
    let mut out = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let mut failures = 0usize;
    let body = input.strip_suffix(b"\n").unwrap_or(&input);
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        if input.is_empty() {
            break;
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let result = match std::str::from_utf8(line)
            .ok()
            .and_then(|l| l.split_once('\t'))
        {
            Some((a, b)) if !b.contains('\t') => {
                compare(args.scheme, a, b).map_err(|e| e.to_string())
            }
            _ => Err(format!(
                "line {}: expected two UTF-8 versions separated by one tab",
                i + 1
            )),
        };
        match result {
            Ok(o) => out.write_all(symbol(o).as_bytes())?,
            Err(e) => {
                failures += 1;
                write!(out, "error: {e}")?;
            }
        }
        out.write_all(b"\n")?;
    }
    out.flush()?;
    if failures > 0 {
        eprintln!("error: {failures} line(s) could not be compared");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
