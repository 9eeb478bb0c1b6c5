//! # scim-edge-load
//!
//! Drives Microsoft Entra ID's provisioning lifecycle against any SCIM 2.0 base URL and reports,
//! per phase, the operations, the errors, operations/s and the p50/p99 latency. A wrong status
//! or a wrong body field counts as an error; the exit status is 1 if any operation failed.
//!
//! ```text
//! scim-edge-load --url http://127.0.0.1:10000/scim/v2/<connection> --token <secret> \
//!     [--concurrency 16] [--users 1000] [--phases lifecycle] [--json out.json]
//! ```
//!
//! Phases run one after another over `--users` users (writes once per user, reads `--reads`
//! times); inside a phase `--concurrency` workers each keep one HTTP/1.1 connection. See
//! `--help` and BENCHMARKS.md.

mod client;
mod report;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use serde_json::json;

use crate::client::{Conn, Target};
use crate::report::{histogram, PhaseResult, Summary};
use crate::workload::{Dialect, Phase, Workload};

const HELP: &str = "\
scim-edge-load: Entra ID's provisioning lifecycle against a SCIM base URL, per-phase numbers.

USAGE: scim-edge-load --url http://HOST:PORT/SCIM/BASE [options]

  --url URL            SCIM base URL (http only), e.g. http://127.0.0.1:10000/scim/v2/<connection>
  --also-url URL       the same SCIM base on another instance (repeatable): the connections are
                       spread over --url and these in turn (several Spin instances on one store)
  --token TOKEN        bearer token (default: $SCIM_EDGE_LOAD_TOKEN; none: no Authorization header)
  --concurrency N      concurrent workers, one keep-alive connection each (16)
  --threads N          client runtime threads (1: the client stays on one core)
  --users N            users that go through the lifecycle (1000)
  --reads N            operations of each read phase, cycling over the users (default: --users)
  --seed N             users created first and left in place: the tenant's size (0)
  --group-members N    the first N seeded users are put in the group first: its size (0)
  --prefix P           names users and the group, so runs never collide (run-<time>-<pid>)
  --phases LIST        lifecycle | scale | comma-separated phases (lifecycle):
                         floor absent create lookup lookup-ext get update disable
                         member-add member-remove page delete
                       lifecycle = absent,create,lookup,get,update,disable,member-add,member-remove,delete
                       scale     = lifecycle + lookup-ext and page (before delete)
  --dialect D          entra | rfc: the group requests' forms (entra). rfc sends groups with the
                       core schema only and removes members with members[value eq \"id\"], for
                       servers that reject Entra's forms
  --page-start N       startIndex of the page phase (seed-999 if seed >= 1000, else 1)
  --warmup N           unmeasured absent-user lookups first (200)
  --timeout SECS       per request (30)
  --max-errors N       stop a phase after N errors (1000)
  --label TEXT         names the target in the output
  --json PATH          also write the results as JSON
  --quiet              no progress lines on stderr

  A second tenant measured in step with the first (the scale check: a small and a large
  tenant side by side). It is seeded after the first; then each phase runs against the first
  and at once against the second, so that drift on a shared machine hits both alike:
  --pair-url URL, --pair-token TOKEN, --pair-seed N, --pair-group-members N, --pair-json PATH
  (its page starts at pair-seed - 999, like --page-start's default)
";

struct Args {
    url: String,
    also_urls: Vec<String>,
    token: Option<String>,
    concurrency: usize,
    threads: usize,
    users: usize,
    reads: Option<usize>,
    seed: usize,
    group_members: usize,
    prefix: String,
    phases: Vec<Phase>,
    dialect: Dialect,
    page_start: Option<usize>,
    warmup: usize,
    timeout: Duration,
    max_errors: u64,
    label: String,
    json: Option<PathBuf>,
    quiet: bool,
    pair: Option<Pair>,
}

/// The second tenant of `--pair-*`.
#[derive(Default)]
struct Pair {
    url: String,
    token: Option<String>,
    seed: usize,
    group_members: usize,
    json: Option<PathBuf>,
}

fn parse_args() -> anyhow::Result<Args> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut a = Args {
        url: String::new(),
        also_urls: Vec::new(),
        token: std::env::var("SCIM_EDGE_LOAD_TOKEN").ok(),
        concurrency: 16,
        threads: 1,
        users: 1000,
        reads: None,
        seed: 0,
        group_members: 0,
        prefix: format!("run-{now}-{}", std::process::id()),
        phases: Phase::LIFECYCLE.to_vec(),
        dialect: Dialect::Entra,
        page_start: None,
        warmup: 200,
        timeout: Duration::from_secs(30),
        max_errors: 1000,
        label: String::new(),
        json: None,
        quiet: false,
        pair: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        let num = |v: String| -> anyhow::Result<usize> {
            v.replace('_', "").parse().with_context(|| format!("{flag} takes a number, not {v:?}"))
        };
        match flag.as_str() {
            "--url" => a.url = value()?,
            "--also-url" => a.also_urls.push(value()?),
            "--token" => a.token = Some(value()?),
            "--concurrency" => a.concurrency = num(value()?)?,
            "--threads" => a.threads = num(value()?)?,
            "--users" => a.users = num(value()?)?,
            "--reads" => a.reads = Some(num(value()?)?),
            "--seed" => a.seed = num(value()?)?,
            "--group-members" => a.group_members = num(value()?)?,
            "--prefix" => a.prefix = value()?,
            "--phases" => a.phases = Phase::parse_list(&value()?)?,
            "--dialect" => a.dialect = value()?.parse()?,
            "--page-start" => a.page_start = Some(num(value()?)?),
            "--warmup" => a.warmup = num(value()?)?,
            "--timeout" => a.timeout = Duration::from_secs(num(value()?)? as u64),
            "--max-errors" => a.max_errors = num(value()?)? as u64,
            "--label" => a.label = value()?,
            "--json" => a.json = Some(PathBuf::from(value()?)),
            "--quiet" => a.quiet = true,
            "--pair-url" => a.pair.get_or_insert_default().url = value()?,
            "--pair-token" => a.pair.get_or_insert_default().token = Some(value()?),
            "--pair-seed" => a.pair.get_or_insert_default().seed = num(value()?)?,
            "--pair-group-members" => a.pair.get_or_insert_default().group_members = num(value()?)?,
            "--pair-json" => a.pair.get_or_insert_default().json = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                print!("{HELP}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    if a.url.is_empty() {
        bail!("--url is required (try --help)");
    }
    if a.concurrency == 0 || a.threads == 0 {
        bail!("--concurrency and --threads must be at least 1");
    }
    if a.group_members > a.seed {
        bail!(
            "--group-members ({}) cannot exceed --seed ({}): members are seeded users",
            a.group_members,
            a.seed
        );
    }
    if let Some(p) = &a.pair {
        if p.url.is_empty() {
            bail!("--pair-url is required with the other --pair-* options");
        }
        if p.group_members > p.seed {
            bail!("--pair-group-members cannot exceed --pair-seed: members are seeded users");
        }
    }
    if a.prefix.is_empty() || !a.prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        bail!("--prefix must be non-empty ASCII letters, digits, '-' or '_'");
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("scim-edge-load: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads).enable_all().build()
    };
    let result = runtime.context("starting the runtime").and_then(|rt| rt.block_on(run(args)));
    match result {
        Ok(0) => ExitCode::SUCCESS,
        Ok(errors) => {
            eprintln!("scim-edge-load: {errors} operation(s) failed");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("scim-edge-load: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// One tenant under load: its workload, its connections and what it measured.
struct Side {
    label: String,
    url: String,
    seed: usize,
    group_members: usize,
    page_start: usize,
    json: Option<PathBuf>,
    /// The instances serving this tenant; connection i goes to `targets[i % len]`.
    targets: Vec<Arc<Target>>,
    workload: Arc<Workload>,
    conns: Vec<Conn>,
    results: Vec<PhaseResult>,
    samples: Vec<String>,
}

impl Side {
    #[allow(clippy::too_many_arguments)]
    async fn new(
        args: &Args,
        label: String,
        url: &str,
        also_urls: &[String],
        token: Option<&str>,
        seed: usize,
        group_members: usize,
        page_start: Option<usize>,
        json: Option<PathBuf>,
    ) -> anyhow::Result<Side> {
        let mut targets = vec![Arc::new(Target::new(url, token, args.timeout).await?)];
        for also in also_urls {
            targets.push(Arc::new(Target::new(also, token, args.timeout).await?));
        }
        let page_start = page_start.unwrap_or(if seed >= 1000 { seed - 999 } else { 1 });
        let floor_only = args.phases.iter().all(|p| *p == Phase::Floor);
        let workload = Arc::new(Workload::new(
            args.prefix.clone(),
            args.dialect,
            args.users,
            seed,
            group_members,
            page_start,
            floor_only,
        ));
        let conns = (0..args.concurrency).filter_map(|i| pick(&targets, i)).map(Conn::new).collect();
        let (results, samples) = (Vec::new(), Vec::new());
        Ok(Side {
            label,
            url: url.to_owned(),
            seed,
            group_members,
            page_start,
            json,
            targets,
            workload,
            conns,
            results,
            samples,
        })
    }

    /// Runs `phase`; `keep` adds its result to the report.
    async fn phase(&mut self, args: &Args, phase: Phase, keep: bool) -> anyhow::Result<PhaseResult> {
        let reads = args.reads.unwrap_or(args.users);
        let ops = self.workload.ops(phase, reads, args.warmup);
        let (mut back, result, errs) = run_phase(
            self.workload.clone(),
            phase,
            ops,
            std::mem::take(&mut self.conns),
            args.max_errors,
            args.quiet,
        )
        .await?;
        // A worker that died took its connection along.
        while back.len() < args.concurrency {
            let Some(target) = pick(&self.targets, back.len()) else { break };
            back.push(Conn::new(target));
        }
        self.conns = back;
        self.samples.extend(errs);
        if keep {
            self.results.push(result.clone());
        }
        Ok(result)
    }

    /// Warm-up, the group and the seeded users: everything before the measured phases.
    async fn setup(&mut self, args: &Args) -> anyhow::Result<()> {
        if args.warmup > 0 {
            let warm = self.phase(args, Phase::Warmup, false).await?;
            if warm.errors > 0 {
                eprintln!("warm-up: {} of {} requests failed", warm.errors, warm.ops);
            }
        }
        if self.group_members > 0 || args.phases.iter().any(|p| p.needs_group()) {
            let conn = self.conns.first_mut().context("no connection")?;
            self.workload.create_group(conn).await.context("creating the group (setup)")?;
        }
        if self.seed > 0 {
            self.phase(args, Phase::Seed, true).await?;
            if self.group_members > 0 {
                self.phase(args, Phase::SeedMembers, true).await?;
            }
        }
        Ok(())
    }

    /// Prints the table and writes the JSON; returns the failed operations.
    fn report(&self, args: &Args) -> anyhow::Result<u64> {
        let reads = args.reads.unwrap_or(args.users);
        let label = if self.label.is_empty() { String::new() } else { format!("[{}] ", self.label) };
        println!(
            "{label}{}{} concurrency={} threads={} users={} reads={reads} seed={} group-members={} prefix={} dialect={:?}",
            self.url,
            if self.targets.len() > 1 { format!(" (+{} instances)", self.targets.len() - 1) } else { String::new() },
            args.concurrency,
            args.threads,
            args.users,
            self.seed,
            self.group_members,
            args.prefix,
            args.dialect
        );
        let lifecycle: Vec<&PhaseResult> =
            self.results.iter().filter(|r| Phase::LIFECYCLE.contains(&r.phase)).collect();
        let summary = if lifecycle.len() > 1 { Some(Summary::of(lifecycle)?) } else { None };
        print!("{}", report::table(&self.results, summary.as_ref()));
        let connects: u64 = self.conns.iter().map(|c| c.connects).sum();
        let errors: u64 = self.results.iter().map(|r| r.errors).sum();
        if connects > args.concurrency as u64 * 2 {
            println!("({connects} connections opened: the server closes connections)");
        }
        for s in &self.samples {
            eprintln!("error: {s}");
        }
        if let Some(path) = &self.json {
            let doc = json!({
                "label": self.label,
                "url": self.url,
                "instances": self.targets.len(),
                "concurrency": args.concurrency,
                "threads": args.threads,
                "users": args.users,
                "reads": reads,
                "seed": self.seed,
                "group_members": self.group_members,
                "page_start": self.page_start,
                "prefix": args.prefix,
                "dialect": format!("{:?}", args.dialect).to_lowercase(),
                "phases": self.results.iter().map(PhaseResult::to_json).collect::<Vec<_>>(),
                "lifecycle": summary.as_ref().map(Summary::to_json),
                "errors": errors,
                "connections": connects,
                "error_samples": self.samples,
            });
            std::fs::write(path, serde_json::to_vec_pretty(&doc)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(errors)
    }
}

/// The instance of connection `i`.
fn pick(targets: &[Arc<Target>], i: usize) -> Option<Arc<Target>> {
    targets.get(i % targets.len().max(1)).cloned()
}

/// Runs everything; returns the number of failed operations.
async fn run(args: Args) -> anyhow::Result<u64> {
    let mut sides = vec![
        Side::new(
            &args,
            args.label.clone(),
            &args.url,
            &args.also_urls,
            args.token.as_deref(),
            args.seed,
            args.group_members,
            args.page_start,
            args.json.clone(),
        )
        .await?,
    ];
    if let Some(p) = &args.pair {
        let label = if args.label.is_empty() { "pair".to_owned() } else { format!("{} pair", args.label) };
        sides.push(
            Side::new(
                &args,
                label,
                &p.url,
                &[],
                p.token.as_deref(),
                p.seed,
                p.group_members,
                None,
                p.json.clone(),
            )
            .await?,
        );
    }
    for side in &mut sides {
        side.setup(&args).await?;
    }
    // Phase by phase, each tenant in turn.
    for phase in &args.phases {
        for side in &mut sides {
            side.phase(&args, *phase, true).await?;
        }
    }
    let mut errors = 0;
    for side in &sides {
        errors += side.report(&args)?;
    }
    Ok(errors)
}

/// Runs one phase: `ops` operations shared by one worker per connection. Returns the
/// connections for the next phase, the result and a few error messages.
async fn run_phase(
    workload: Arc<Workload>,
    phase: Phase,
    ops: usize,
    conns: Vec<Conn>,
    max_errors: u64,
    quiet: bool,
) -> anyhow::Result<(Vec<Conn>, PhaseResult, Vec<String>)> {
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let progress = (!quiet && ops >= 5000).then(|| {
        let next = next.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            tick.tick().await;
            loop {
                tick.tick().await;
                let done = next.load(Ordering::Relaxed).min(ops);
                eprintln!("  {phase}: {done}/{ops} after {:.0} s", started.elapsed().as_secs_f64());
            }
        })
    });

    let mut workers = Vec::with_capacity(conns.len());
    for mut conn in conns {
        let (workload, next, failed) = (workload.clone(), next.clone(), failed.clone());
        let mut latency = histogram()?;
        workers.push(tokio::spawn(async move {
            let (mut done, mut errors, mut samples) = (0u64, 0u64, Vec::new());
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= ops || failed.load(Ordering::Relaxed) >= max_errors {
                    break;
                }
                let t0 = Instant::now();
                let outcome = workload.run(phase, i, &mut conn).await;
                let us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
                let _ = latency.record(us.max(1));
                done += 1;
                if let Err(e) = outcome {
                    errors += 1;
                    failed.fetch_add(1, Ordering::Relaxed);
                    if samples.len() < 3 {
                        samples.push(format!("{phase} #{i}: {e}"));
                    }
                }
            }
            (conn, latency, done, errors, samples)
        }));
    }

    let mut result = PhaseResult { phase, ops: 0, errors: 0, elapsed: Duration::ZERO, latency: histogram()? };
    let mut conns = Vec::with_capacity(workers.len());
    let mut samples = Vec::new();
    for worker in workers {
        match worker.await {
            Ok((conn, latency, done, errors, s)) => {
                conns.push(conn);
                let _ = result.latency.add(&latency);
                result.ops += done;
                result.errors += errors;
                samples.extend(s);
            }
            Err(e) => {
                samples.push(format!("{phase}: a worker died: {e}"));
                result.errors += 1;
            }
        }
    }
    result.elapsed = started.elapsed();
    if let Some(p) = progress {
        p.abort();
    }
    if failed.load(Ordering::Relaxed) >= max_errors {
        samples.push(format!("{phase}: stopped after {max_errors} errors"));
    }
    samples.truncate(10);
    Ok((conns, result, samples))
}
