//! `cargo xtask fuzz`: the fuzz targets of `fuzz/` (cargo-fuzz's layout, libFuzzer through
//! `libfuzzer-sys`), built and run on stable Rust without cargo-fuzz itself.
//!
//! The build passes the same instrumentation flags `cargo fuzz build --sanitizer none` does
//! (SanitizerCoverage through `-Cpasses=sancov-module`: all stable `-C` options; only the
//! sanitizers need nightly), for the host triple, so build scripts and proc macros stay
//! uninstrumented. Each target then runs for a bounded time over its committed corpus
//! (`fuzz/corpus/<target>`, replayed first, never written to) and a scratch corpus in
//! `fuzz/target/corpus/<target>` where new inputs go. A crash stops with the input saved under
//! `fuzz/artifacts/<target>/` and the command that replays it.
//!
//! - `cargo xtask fuzz [TARGET] [--seconds N]`: every target (or one) for N seconds (default 60).
//! - `cargo xtask fuzz [TARGET] --minimize`: merges the scratch corpus into the committed one,
//!   keeping a smallest set of inputs that covers what all of them cover (libFuzzer's
//!   `-set_cover_merge=1`; `cargo fuzz cmin` does the same job with `-merge=1`).
//! - `cargo xtask test` (and `cargo xtask fuzz --ci`) calls [`ci`]: the targets that don't need a database library, for
//!   [`CI_SECONDS`] each, built with a lighter profile; see docs/fuzzing.md for the budget.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};

use crate::{cargo, root, run, shown};

/// What `cargo fuzz build --sanitizer none` passes to rustc (cargo-fuzz 0.13).
const INSTRUMENTATION: &[&str] = &[
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "--cfg",
    "fuzzing",
    "-Cllvm-args=-simplifycfg-branch-fold-threshold=0",
    "-Cllvm-args=-sanitizer-coverage-stack-depth",
    "-Cdebug-assertions",
];

/// Every target, as `fuzz/Cargo.toml` lists them.
pub const TARGETS: &[&str] = &[
    "manifest",
    "routes",
    "package_raw",
    "package_tar",
    "lockfile",
    "registry_meta",
    "documents_path",
    "documents_query",
];

/// The targets that need the `documents` feature (sqlx and SQLite).
const DOCUMENT_TARGETS: &[&str] = &["documents_path", "documents_query"];

/// Seconds per target in `cargo xtask test`.
pub const CI_SECONDS: u64 = 15;

pub fn main(args: &[String]) -> anyhow::Result<()> {
    let mut target = None;
    let mut seconds = 60;
    let mut minimize = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .context("--seconds takes a number")?
            }
            "--minimize" => minimize = true,
            // Exactly what `cargo xtask test` runs.
            "--ci" => return ci(),
            name if TARGETS.contains(&name) => target = Some(name),
            other => bail!(
                "unknown argument '{other}'\n  usage: cargo xtask fuzz [TARGET] [--seconds N] [--minimize]\n  targets: {}",
                TARGETS.join(", ")
            ),
        }
    }
    let targets: Vec<&str> = match target {
        Some(t) => vec![t],
        None => TARGETS.to_vec(),
    };
    let bins = build("release", true)?;
    for t in targets {
        if minimize {
            self::minimize(&bins, t)?;
        } else {
            let stats = fuzz(&bins, t, seconds)?;
            eprintln!("xtask: {t}: {stats}");
        }
    }
    Ok(())
}

/// The bounded run of `cargo xtask test`.
pub fn ci() -> anyhow::Result<()> {
    let started = Instant::now();
    let bins = build("fuzz-ci", false)?;
    let built = started.elapsed();
    let mut lines = Vec::new();
    for t in TARGETS.iter().filter(|t| !DOCUMENT_TARGETS.contains(t)) {
        let stats = fuzz(&bins, t, CI_SECONDS)?;
        lines.push(format!("  {t:<14} {stats}"));
    }
    eprintln!(
        "xtask: fuzzing done in {:.0} s (build {:.0} s), no crash:\n{}",
        started.elapsed().as_secs_f64(),
        built.as_secs_f64(),
        lines.join("\n")
    );
    Ok(())
}

fn host_triple() -> anyhow::Result<String> {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .context("cannot run rustc -vV")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .context("rustc -vV printed no host triple")
}

/// Builds the instrumented targets; returns the folder holding them.
fn build(profile: &str, documents: bool) -> anyhow::Result<PathBuf> {
    let triple = host_triple()?;
    let fuzz = root().join("fuzz");
    eprintln!("xtask: building the fuzz targets ({profile} profile, {triple})");
    let mut cmd = cargo();
    cmd.args(["build", "--locked", "--bins", "--manifest-path"])
        .arg(fuzz.join("Cargo.toml"))
        .args(["--target", &triple, "--profile", profile, "--target-dir"])
        .arg(fuzz.join("target"));
    if !documents {
        cmd.arg("--no-default-features");
    }
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("RUSTFLAGS", INSTRUMENTATION.join(" "));
    run(&mut cmd).context("building the fuzz targets failed")?;
    Ok(fuzz.join("target").join(triple).join(profile))
}

/// Runs `target` for `seconds` over its corpus; fails on a crash.
fn fuzz(bins: &Path, target: &str, seconds: u64) -> anyhow::Result<Stats> {
    let fuzz = root().join("fuzz");
    let committed = fuzz.join("corpus").join(target);
    let scratch = fuzz.join("target").join("corpus").join(target);
    let artifacts = fuzz.join("artifacts").join(target);
    std::fs::create_dir_all(&scratch)?;
    std::fs::create_dir_all(&artifacts)?;
    let log = fuzz.join("target").join(format!("{target}.log"));
    let mut cmd = Command::new(bins.join(target));
    cmd.arg(&scratch)
        .arg(&committed)
        .arg(format!("-max_total_time={seconds}"))
        .arg("-timeout=10")
        .arg("-rss_limit_mb=2048")
        .arg("-print_final_stats=1")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .current_dir(&fuzz)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?);
    eprintln!("xtask: fuzzing {target} for {seconds} s");
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {}", shown(&cmd)))?;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    if !status.success() {
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        let crash = text
            .lines()
            .find_map(|l| l.split("Test unit written to ").nth(1))
            .unwrap_or("(see the log)");
        bail!(
            "fuzz target {target} failed ({status}):\n{}\n\n  input: {crash}\n  replay: {} {crash}\n  log: {}",
            tail.join("\n"),
            bins.join(target).display(),
            log.display()
        );
    }
    Ok(Stats::parse(&text, corpus_size(&committed)))
}

/// Merges the scratch corpus into the committed one, keeping what adds coverage.
fn minimize(bins: &Path, target: &str) -> anyhow::Result<()> {
    let fuzz = root().join("fuzz");
    let committed = fuzz.join("corpus").join(target);
    let scratch = fuzz.join("target").join("corpus").join(target);
    let merged = fuzz.join("target").join("merged").join(target);
    if merged.exists() {
        std::fs::remove_dir_all(&merged)?;
    }
    std::fs::create_dir_all(&merged)?;
    std::fs::create_dir_all(&scratch)?;
    let before = corpus_size(&committed);
    run(Command::new(bins.join(target))
        .arg("-set_cover_merge=1")
        .arg(&merged)
        .arg(&committed)
        .arg(&scratch)
        .stderr(Stdio::null()))?;
    // Hand-written seeds stay whatever the merge thinks of them: they document the formats.
    for entry in std::fs::read_dir(&committed)? {
        let entry = entry?;
        if !entry.file_name().to_string_lossy().starts_with("seed-") {
            std::fs::remove_file(entry.path())?;
        }
    }
    for entry in std::fs::read_dir(&merged)? {
        let entry = entry?;
        let to = committed.join(entry.file_name());
        if !to.exists() {
            std::fs::copy(entry.path(), to)?;
        }
    }
    eprintln!(
        "xtask: {target}: corpus {} → {} files",
        before.0,
        corpus_size(&committed).0
    );
    Ok(())
}

/// Files and bytes in a corpus folder.
fn corpus_size(dir: &Path) -> (usize, u64) {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .fold((0, 0), |(n, b), m| (n + 1, b + m.len()))
        })
        .unwrap_or((0, 0))
}

/// What libFuzzer's final stats said.
struct Stats {
    runs: u64,
    per_second: u64,
    coverage: String,
    corpus: (usize, u64),
}

impl Stats {
    fn parse(log: &str, corpus: (usize, u64)) -> Self {
        let stat = |name: &str| {
            log.lines()
                .find_map(|l| l.strip_prefix(&format!("stat::{name}:")))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        let coverage = log
            .lines()
            .rev()
            .find_map(|l| l.split_once("cov: ").map(|(_, rest)| rest))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or("?")
            .to_string();
        Self {
            runs: stat("number_of_executed_units"),
            per_second: stat("average_exec_per_sec"),
            coverage,
            corpus,
        }
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} runs, {}/s, coverage {} edges, committed corpus {} files ({} bytes)",
            self.runs, self.per_second, self.coverage, self.corpus.0, self.corpus.1
        )
    }
}
