//! `entente bench evidence`: ingest of one large file against openssl, sha256sum, a durable
//! copy and case_file; peak RSS; package and verify of many small files. See BENCHMARKS.md.

use entente_console::{Exit, Failure, FileProgress, fail};
use entente_evidence::package;
use entente_node::Node;
use entente_node::packages::{AddSpec, PackageSpec, add_file, build_package, verify_file};
use entente_policy::agreement::{DataCategory, Purpose, RequestKind};
use jiff::Timestamp;

/// CPU time (user + system, all threads) this process has used, in seconds.
fn cpu_secs() -> f64 {
    cpu_of("self")
}

/// CPU time (user + system, all threads) process `pid` (or `self`) has used, in seconds.
pub(crate) fn cpu_of(pid: &str) -> f64 {
    // /proc/PID/stat: fields 14 and 15 (utime, stime) in clock ticks of 1/100 s, after the
    // command name in parentheses.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (field(11) + field(12)) / 100.0
}

/// The load average of the machine (1, 5, 15 minutes), as `/proc/loadavg` gives it.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn peak_rss_mib() -> Option<f64> {
    peak_rss_mib_of("self")
}

/// Peak resident set of process `pid` (or `self`), in MiB (`VmHWM`).
pub(crate) fn peak_rss_mib_of(pid: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn time_tool(program: &str, args: &[&std::ffi::OsStr]) -> Option<f64> {
    let start = std::time::Instant::now();
    let status = std::process::Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .ok()?;
    status.success().then(|| start.elapsed().as_secs_f64())
}

/// `entente bench evidence`: see BENCHMARKS.md.
pub(crate) async fn run(size_mib: u64, files: usize, file_size: usize) -> Result<(), Failure> {
    use std::io::Write as _;
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    let node = Node::init(
        &entente_node::InitOptions {
            data_dir: root.join("node"),
            party: "DE".parse()?,
            name: "benchmark node".into(),
            database_url: None,
            listen: ([127, 0, 0, 1], 0).into(),
            federation_listen: None,
        },
        Timestamp::now(),
    )
    .await?;
    let actor = crate::bench_user(&node, entente_core::Role::Investigator).await?;
    node.gate
        .submit(
            actor.clone(),
            entente_store::cases::OpenCase {
                id: "BENCH".parse()?,
                title: "benchmark".into(),
                concepts: vec!["illegal-access".into()],
            },
            Timestamp::now(),
        )
        .await?;
    // A file of pseudo-random bytes (xorshift), written in 1 MiB blocks.
    let big = root.join("big.bin");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&big)?);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut buf = vec![0u8; 1 << 20];
        for _ in 0..size_mib {
            for chunk in buf.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
            }
            f.write_all(&buf)?;
        }
        f.flush()?;
    }
    let bytes = (size_mib << 20) as f64;
    let mbs = |secs: f64| bytes / secs / 1e6;
    println!(
        "machine: {} cores, load average {} (1, 5, 15 min) at the start",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        load_average()
    );
    println!("ingest of one {size_mib} MiB file (page cache warm: each reader runs once before)");
    let _ = time_tool("cat", &[big.as_os_str()]);
    let openssl = time_tool("openssl", &["dgst".as_ref(), "-sha256".as_ref(), big.as_os_str()]);
    let sha256sum = time_tool("sha256sum", &[big.as_os_str()]);
    // The disk's bound for a durable write of that size: a copy synced to disk.
    let copy = root.join("copy.bin");
    let dd = time_tool(
        "dd",
        &[
            format!("if={}", big.display()).as_ref(),
            format!("of={}", copy.display()).as_ref(),
            "bs=1M".as_ref(),
            "conv=fsync".as_ref(),
        ],
    );
    let _ = std::fs::remove_file(&copy);
    let rss_before = peak_rss_mib();
    let spec = AddSpec {
        case: "BENCH".parse()?,
        description: "benchmark file".into(),
        category: DataCategory::Content,
        media_type: "application/octet-stream".into(),
        source: None,
        collected_at: None,
        reason: "benchmark".into(),
        legal_basis: None,
    };
    let start = std::time::Instant::now();
    let progress = FileProgress::for_file(&big);
    let added = add_file(
        &node,
        &actor,
        &big,
        Some("big".parse()?),
        &spec,
        Timestamp::now(),
        progress.updater(),
    )
    .await;
    progress.finish();
    let (_, r) = added?;
    let ours = start.elapsed().as_secs_f64();
    let rss_after = peak_rss_mib();
    let out = root.join("case_file.json");
    let case_file =
        time_tool("case_file", &["--disable-mtime".as_ref(), out.as_os_str(), big.as_os_str()]);
    println!(
        "  {:<40} {:>8.2} s {:>9.0} MB/s",
        "entente evidence add (SHA-256 + age)",
        ours,
        mbs(ours)
    );
    for (name, t) in [
        ("openssl dgst -sha256", openssl),
        ("sha256sum", sha256sum),
        ("dd conv=fsync (durable copy: the disk)", dd),
        ("case_file (case-utils, 6 hashes)", case_file),
    ] {
        match t {
            Some(t) => println!(
                "  {:<40} {:>8.2} s {:>9.0} MB/s   entente/peer throughput {:.2}×",
                name,
                t,
                mbs(t),
                t / ours
            ),
            None => println!("  {name:<40} not run (not on PATH)"),
        }
    }
    println!(
        "  peak RSS of this process: {:.1} MiB before the ingest, {:.1} MiB after (content hash {}…)",
        rss_before.unwrap_or(0.0),
        rss_after.unwrap_or(0.0),
        &r.sha256[..16]
    );
    let _ = std::fs::remove_file(&big);

    println!("package and verify of {files} files of {file_size} bytes");
    let small = root.join("small");
    std::fs::create_dir_all(&small)?;
    let mut ids = Vec::with_capacity(files);
    let (start, cpu) = (std::time::Instant::now(), cpu_secs());
    let mut set = tokio::task::JoinSet::new();
    for i in 0..files {
        let p = small.join(format!("f{i}.bin"));
        let mut body = vec![0u8; file_size];
        body[..8].copy_from_slice(&(i as u64).to_le_bytes());
        std::fs::write(&p, body)?;
        let (node, actor) = (node.clone(), actor.clone());
        let spec = AddSpec { description: format!("small file {i}"), ..spec.clone() };
        let id: entente_core::ItemId = format!("small-{i}").parse()?;
        set.spawn(async move {
            add_file(&node, &actor, &p, Some(id), &spec, Timestamp::now(), |_| {})
                .await
                .map(|(_, r)| r.id)
        });
    }
    while let Some(r) = set.join_next().await {
        ids.push(r.map_err(|e| fail(Exit::Failed, e))??.parse()?);
    }
    let (added, added_cpu) = (start.elapsed().as_secs_f64(), cpu_secs() - cpu);
    let pkg = root.join("bench.tar");
    let spec = PackageSpec {
        items: ids,
        to: "NL".parse()?,
        recipient: None,
        request: "BENCH-REQ".parse()?,
        request_kind: Some(RequestKind::Production),
        purpose: Purpose::CriminalInvestigation,
        retain_until: None,
    };
    let (start, cpu) = (std::time::Instant::now(), cpu_secs());
    build_package(&node, &actor, &spec, &pkg, Timestamp::now()).await?;
    let (packaged, packaged_cpu) = (start.elapsed().as_secs_f64(), cpu_secs() - cpu);
    let key = node.verifying_key();
    let (start, cpu) = (std::time::Instant::now(), cpu_secs());
    let v = verify_file(&pkg, &[key], None, None, &mut package::Discard)?;
    let (verified, verified_cpu) = (start.elapsed().as_secs_f64(), cpu_secs() - cpu);
    let n = files as f64;
    // Wall time, and the CPU time this process used (all threads): on a shared machine the
    // second shows what the work costs when other processes take the cores.
    for (name, wall, cpu) in [
        ("add (ingest + gate)", added, added_cpu),
        ("package (export through the gate + write)", packaged, packaged_cpu),
        ("verify", verified, verified_cpu),
    ] {
        println!("  {name:<42} {wall:>6.2} s {:>7.0} files/s   CPU {cpu:.2} s", n / wall);
    }
    println!("  ({} custody events proven by verify)", v.proven_events);
    Ok(())
}
