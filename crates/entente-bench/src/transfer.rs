//! `entente bench transfer`: one evidence package of N MiB from DE to NL over the federation
//! (two `entente serve` processes on loopback, mutual TLS), against `curl` fetching the same
//! file from the same endpoint with NL's certificate in the same run.
//!
//! 1. DE takes in a file of N MiB of random bytes as evidence, packages it for NL (encrypted to
//!    NL's pinned age recipient) and the package is staged for sending (not timed).
//! 2. Entente: from the commit of the offer (`package.send`) to NL's recorded arrival
//!    (`package.arrive`): the offer envelope delivered and acknowledged, NL's fetcher streams the
//!    file to disk, hashes it, syncs it to disk (fsync) and records it through its gate.
//! 3. curl: `curl --cert NL --key NL -o FILE URL` of the same file from DE's federation endpoint,
//!    timed alone and followed by `sync FILE` (the same durability as step 2).

use crate::federation::{node, pin, serve};
use entente_console::{Exit, Failure, FileProgress, fail, progress_bar};
use entente_core::{PartyCode, Role};
use entente_node::Node;
use jiff::Timestamp;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

fn random_file(path: &Path, mib: u64) -> Result<(), Failure> {
    let bar = progress_bar(mib, "random evidence file (MiB)");
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut buf = vec![0u8; 1 << 20];
    // xorshift64*: incompressible enough for a transfer (nothing on the path compresses).
    let mut x = Instant::now().elapsed().as_nanos() as u64 | 0x9E37_79B9_7F4A_7C15;
    for _ in 0..mib {
        for chunk in buf.chunks_exact_mut(8) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            chunk.copy_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        f.write_all(&buf)?;
        bar.inc(1);
    }
    f.into_inner().map_err(|e| fail(Exit::Failed, e.into_error()))?.sync_all()?;
    bar.finish_and_clear();
    Ok(())
}

fn mib_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1048576.0 / secs.max(1e-9)
}

/// NL's key as PKCS#8 v1 for curl: OpenSSL 3.0 does not read the v2 form (with the public
/// key) that `init` writes. Read from NL's key file: an operator holding the data directory
/// has it (the node itself never hands its key out).
fn curl_key(nl: &Node, dir: &Path) -> Result<std::path::PathBuf, Failure> {
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    let key =
        entente_node::identity::load_key(&nl.data_dir.join(entente_node::identity::KEY_FILE))?;
    let v1 = ed25519_dalek::pkcs8::KeypairBytes { secret_key: key.to_bytes(), public_key: None };
    let pem = v1.to_pkcs8_pem(Default::default()).map_err(|e| fail(Exit::Failed, e))?;
    let path = dir.join("nl-key-v1.pem");
    std::fs::write(&path, pem.as_bytes())?;
    Ok(path)
}

fn timed_curl(nl: &Path, key: &Path, url: &str, out: &Path, sync: bool) -> Result<f64, Failure> {
    let _ = std::fs::remove_file(out);
    let t = Instant::now();
    let status = std::process::Command::new("curl")
        .args(["-sS", "--fail", "-k", "--cert"])
        .arg(nl.join(entente_node::identity::CERT_FILE))
        .arg("--key")
        .arg(key)
        .arg("-o")
        .arg(out)
        .arg(url)
        .status()
        .map_err(|e| fail(Exit::Failed, format!("curl: {e}")))?;
    if !status.success() {
        return Err(fail(Exit::Failed, format!("curl {url} failed: {status}")));
    }
    if sync {
        std::fs::File::open(out)?.sync_all()?;
    }
    Ok(t.elapsed().as_secs_f64())
}

/// Runs the benchmark with a package of about `size_mib` MiB; curl runs `curl_runs` times.
pub(crate) async fn run(size_mib: u64, curl_runs: u32) -> Result<(), Failure> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path();
    let de = node(root, "DE").await?;
    let nl = node(root, "NL").await?;
    pin(&de, &nl).await?;
    pin(&nl, &de).await?;
    let actor = crate::bench_user(&de, Role::Investigator).await?;
    let open = entente_store::cases::OpenCase {
        id: "BENCH".parse()?,
        title: "transfer benchmark".into(),
        concepts: vec!["illegal-access".into()],
    };
    de.gate.submit(actor.clone(), open, Timestamp::now()).await?;
    let file = root.join("image.bin");
    random_file(&file, size_mib)?;
    let spec = entente_node::packages::AddSpec {
        case: "BENCH".parse()?,
        description: "disk image extract".into(),
        category: entente_policy::agreement::DataCategory::Content,
        media_type: "application/octet-stream".into(),
        source: None,
        collected_at: None,
        reason: "benchmark".into(),
        legal_basis: None,
    };
    eprintln!("DE takes the file in as evidence and packages it for NL …");
    let progress = FileProgress::for_file(&file);
    let added = entente_node::packages::add_file(
        &de,
        &actor,
        &file,
        Some("EV-1".parse()?),
        &spec,
        Timestamp::now(),
        progress.updater(),
    )
    .await;
    progress.finish();
    let (_, rec) = added?;
    std::fs::remove_file(&file)?;
    let to: PartyCode = "NL".parse()?;
    let pspec = entente_node::packages::PackageSpec {
        items: vec![rec.id.parse()?],
        to: to.clone(),
        recipient: de.store.peer(&to).await?.and_then(|p| p.age_recipient),
        request: "REQ-BENCH".parse()?,
        request_kind: Some(entente_policy::agreement::RequestKind::Production),
        purpose: entente_policy::agreement::Purpose::CriminalInvestigation,
        retain_until: None,
    };
    let pkg = root.join("answer.tar.age");
    let written =
        entente_node::packages::build_package(&de, &actor, &pspec, &pkg, Timestamp::now()).await?;
    let size = std::fs::metadata(&pkg)?.len();

    let _nl_proc = serve(&nl).await?;
    let _de_proc = serve(&de).await?;
    eprintln!("DE offers the package ({size} bytes) to NL; NL's node fetches it …");
    let sent = entente_node::packages::send_package(
        &de,
        &actor,
        &pkg,
        &to,
        &pspec.items,
        Some(pspec.request.clone()),
        &written.manifest_sha256,
    )
    .await?;
    let t0 = Instant::now();
    let bar = progress_bar(size, "NL fetches the package (bytes on disk)");
    let de_party: PartyCode = "DE".parse()?;
    let part = entente_node::transfer::partial_file(&nl.data_dir, de_party.as_str(), &sent.sha256);
    let deadline = t0 + Duration::from_secs(600);
    let entente_secs = loop {
        let arrived = nl
            .store
            .packages_in(false)
            .await?
            .into_iter()
            .find(|p| p.offer.sha256 == sent.sha256)
            .map(|p| p.status);
        match arrived.as_deref() {
            Some("arrived") => break t0.elapsed().as_secs_f64(),
            Some("refused") => return Err(fail(Exit::Failed, "NL refused the package")),
            _ => {}
        }
        if Instant::now() > deadline {
            return Err(fail(Exit::Failed, "the package did not arrive within 10 minutes"));
        }
        bar.set_position(std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    bar.finish_and_clear();
    let faddr =
        de.config.federation_listen.ok_or_else(|| fail(Exit::Failed, "no federation address"))?;
    let url = format!("https://{faddr}{}/{}", entente_node::transfer::PACKAGES_PATH, sent.sha256);
    let out = root.join("curl.out");
    let key = curl_key(&nl, root)?;
    let mut plain = Vec::new();
    let mut synced = Vec::new();
    for _ in 0..curl_runs.max(1) {
        plain.push(timed_curl(&nl.data_dir, &key, &url, &out, false)?);
        synced.push(timed_curl(&nl.data_dir, &key, &url, &out, true)?);
    }
    let got = std::fs::metadata(&out)?.len();
    if got != size {
        return Err(fail(Exit::Failed, format!("curl fetched {got} bytes, expected {size}")));
    }
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let (cp, cs) = (best(&plain), best(&synced));
    println!("package transfer, {size} bytes, DE → NL over mutual TLS on loopback");
    println!(
        "  entente (offer committed → arrival recorded, hashed, fsync'd): {entente_secs:.3} s = {:.0} MiB/s",
        mib_s(size, entente_secs)
    );
    println!(
        "  curl -o FILE (best of {}):                   {cp:.3} s = {:.0} MiB/s",
        plain.len(),
        mib_s(size, cp)
    );
    println!(
        "  curl -o FILE + fsync (best of {}):           {cs:.3} s = {:.0} MiB/s",
        synced.len(),
        mib_s(size, cs)
    );
    println!(
        "  ratio: {:.2}× of curl, {:.2}× of curl + fsync (target ≥ 0.8× of curl)",
        cp / entente_secs,
        cs / entente_secs
    );
    Ok(())
}
