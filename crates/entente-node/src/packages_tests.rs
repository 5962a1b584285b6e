//! Packages end to end in process: built by a real node through the gate, then verified,
//! tampered with and refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use super::*;
use crate::InitOptions;
use entente_evidence::package::{Discard, Manifest, PackageError};
use entente_evidence::ustar;
use std::io::Read as _;
use std::path::PathBuf;

fn ok<T>(r: Result<T, PackagesError>) -> T {
    r.unwrap()
}

/// An investigator of `node`, authenticated by a fresh token as a user would be.
async fn investigator(node: &Node) -> Principal {
    let token = crate::identity::random_hex(32).unwrap();
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()));
    let add = entente_store::users::AddUser {
        name: "investigator".into(),
        role: entente_core::Role::Investigator,
        token_sha256: digest,
    };
    node.gate.submit(node.operator(), add, Timestamp::now()).await.unwrap();
    node.store.authenticate_token(&token).await.unwrap()
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    de: Node,
    nl_master: std::sync::Arc<MasterKey>,
    plain: Vec<u8>,
    encrypted: PathBuf,
    /// The two items' ids.
    ids: Vec<String>,
    /// DE's investigator.
    inv: Principal,
}

async fn node(root: &Path, party: &str) -> Node {
    Node::init(
        &InitOptions {
            data_dir: root.join(party),
            party: party.parse().unwrap(),
            name: format!("{party} test unit"),
            database_url: None,
            listen: ([127, 0, 0, 1], 0).into(),
            federation_listen: None,
        },
        Timestamp::now(),
    )
    .await
    .unwrap()
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let de = node(&root, "DE").await;
    let nl = node(&root, "NL").await;
    let inv = investigator(&de).await;
    de.gate
        .submit(
            inv.clone(),
            entente_store::cases::OpenCase {
                id: "C1".parse().unwrap(),
                title: "t".into(),
                concepts: vec!["illegal-access".into()],
            },
            Timestamp::now(),
        )
        .await
        .unwrap();
    let spec = AddSpec {
        case: "C1".parse().unwrap(),
        description: "logs".into(),
        category: DataCategory::Traffic,
        media_type: "text/plain".into(),
        source: None,
        collected_at: None,
        reason: "test".into(),
        legal_basis: Some("REQ-1".into()),
    };
    let mut ids = Vec::new();
    let mut names = Vec::new();
    for (n, body) in [("a.log", "first file\n".repeat(50)), ("b.log", "second file\n".repeat(70))] {
        let p = root.join(n);
        std::fs::write(&p, body).unwrap();
        let (_, r) = ok(add_file(&de, &inv, &p, None, &spec, Timestamp::now(), |_| {}).await);
        names.push(r.id.clone());
        ids.push(r.id.parse().unwrap());
    }
    let (nl_master, _) = ok(vault(&nl));
    let mut spec = PackageSpec {
        items: ids,
        to: "NL".parse().unwrap(),
        recipient: None,
        request: "REQ-1".parse().unwrap(),
        request_kind: Some(RequestKind::Production),
        purpose: Purpose::CriminalInvestigation,
        retain_until: None,
    };
    let plain = root.join("p.tar");
    ok(build_package(&de, &inv, &spec, &plain, Timestamp::now()).await);
    spec.recipient = Some(nl_master.recipient());
    let encrypted = root.join("p.tar.age");
    ok(build_package(&de, &inv, &spec, &encrypted, Timestamp::now()).await);
    let plain = std::fs::read(&plain).unwrap();
    Fixture { _dir: dir, root, de, nl_master, plain, encrypted, ids: names, inv }
}

fn check(f: &Fixture, bytes: &[u8]) -> Result<Verified, PackageError> {
    let key = f.de.verifying_key();
    let opts = VerifyOptions {
        trusted: &[key],
        identity: Some(f.nl_master.identity()),
        our_recipient: None,
    };
    package::verify(&mut &bytes[..], &opts, &mut Discard)
}

fn members(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut r = ustar::Reader::new(bytes);
    let mut out = Vec::new();
    while let Some((name, _)) = r.next_member().unwrap() {
        let mut d = Vec::new();
        r.data().read_to_end(&mut d).unwrap();
        out.push((name, d));
    }
    out
}

fn pack(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut w = ustar::Writer::new(Vec::new());
    for (n, d) in members {
        w.append_bytes(n, d).unwrap();
    }
    w.finish().unwrap()
}

/// Edits the manifest; re-signs it with the sender's own key when `resign` (an insider
/// rewriting history), so that only the custody and ledger checks can catch the edit.
fn edit(f: &Fixture, resign: bool, change: impl FnOnce(&mut Manifest)) -> Vec<u8> {
    let mut m = members(&f.plain);
    let mut manifest: Manifest = serde_json::from_slice(&m[0].1).unwrap();
    change(&mut manifest);
    m[0].1 = entente_core::canonical::to_canonical_vec(&manifest).unwrap();
    if resign {
        use ed25519_dalek::Signer as _;
        // The insider holds DE's data directory, so it has the key file: read from there,
        // not from the node (whose signing key is private to it).
        let key =
            crate::identity::load_key(&f.de.data_dir.join(crate::identity::KEY_FILE)).unwrap();
        m[1].1 = key.sign(&m[0].1).to_bytes().to_vec();
    }
    pack(&m)
}

#[tokio::test]
async fn packages_verify_and_every_tampering_is_refused() {
    let f = fixture().await;
    let v = check(&f, &f.plain).unwrap();
    assert_eq!(v.manifest.items.len(), 2);
    assert_eq!(v.proven_events, 4, "acquired + exported for each item");
    // Encrypted to NL: NL opens it; anyone else is told it is not addressed to them.
    let enc = std::fs::read(&f.encrypted).unwrap();
    assert!(enc.starts_with(b"age-encryption.org/v1"));
    assert!(check(&f, &enc).unwrap().encrypted);
    let other = MasterKey::generate();
    let key = f.de.verifying_key();
    let opts =
        VerifyOptions { trusted: &[key], identity: Some(other.identity()), our_recipient: None };
    let e = package::verify(&mut &enc[..], &opts, &mut Discard).unwrap_err();
    assert!(matches!(e, PackageError::NotAddressedToUs(_)), "{e}");
    // Ciphertext altered past the age header: the failure names the payload chunk.
    let mut altered = enc.clone();
    let at = altered.len() - 40;
    altered[at] ^= 1;
    let e = check(&f, &altered).unwrap_err().to_string();
    assert!(e.contains("payload does not authenticate in its chunk"), "{e}");
    // Addressed (in a plain package) to another node.
    let opts =
        VerifyOptions { trusted: &[key], identity: None, our_recipient: Some("age1someoneelse") };
    let plain_addressed = {
        let mut m = members(&enc_plain(&f, &enc));
        let _ = &mut m;
        pack(&m)
    };
    let e = package::verify(&mut &plain_addressed[..], &opts, &mut Discard).unwrap_err();
    assert!(e.to_string().contains("addressed to NL"), "{e}");
    // Unknown sender.
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]).verifying_key();
    let opts = VerifyOptions { trusted: &[stranger], identity: None, our_recipient: None };
    let e = package::verify(&mut &f.plain[..], &opts, &mut Discard).unwrap_err();
    assert!(matches!(e, PackageError::UnknownSender { .. }), "{e}");
    assert!(e.to_string().contains("--sender-key"), "{e}");

    // Custody edits, re-signed by the sender: caught by the chain and the ledger proofs.
    let removed = edit(&f, true, |m| {
        m.items[0].custody.remove(0);
    });
    let e = check(&f, &removed).unwrap_err().to_string();
    assert!(e.contains("custody event 0") && e.contains("seq"), "{e}");
    let removed_last = edit(&f, true, |m| {
        m.items[0].custody.pop();
    });
    let e = check(&f, &removed_last).unwrap_err().to_string();
    assert!(e.contains("`exported` event"), "{e}");
    let reordered = edit(&f, true, |m| m.items[0].custody.swap(0, 1));
    assert!(check(&f, &reordered).unwrap_err().to_string().contains("seq"));
    let duplicated = edit(&f, true, |m| {
        let e = m.items[0].custody[0].clone();
        m.items[0].custody.insert(1, e);
    });
    assert!(check(&f, &duplicated).is_err());
    let reworded = edit(&f, true, |m| m.items[1].custody[0].event.reason = "other".into());
    let e = check(&f, &reworded).unwrap_err().to_string();
    assert!(e.contains("item") && e.contains("prev"), "{e}");
    let wrong_entry = edit(&f, true, |m| {
        let l = m.items[0].custody[0].ledger.clone();
        m.items[1].custody[0].ledger = l;
    });
    let e = check(&f, &wrong_entry).unwrap_err().to_string();
    assert!(e.contains("custody event 0 (acquired)") && e.contains("does not record"), "{e}");
    // The same edit without re-signing: the signature says so.
    let unsigned = edit(&f, false, |m| m.items[0].custody.swap(0, 1));
    assert!(matches!(check(&f, &unsigned).unwrap_err(), PackageError::Signature(_)));

    // Swap two payloads.
    let mut m = members(&f.plain);
    let (i, j) = (6, 7);
    let (a, b) = (m[i].1.clone(), m[j].1.clone());
    m[i].1 = b;
    m[j].1 = a;
    let e = check(&f, &pack(&m)).unwrap_err();
    assert!(matches!(e, PackageError::Digest { .. } | PackageError::SizeMismatch { .. }), "{e}");
    // A payload shorter than its manifest says is named as such, not as too large.
    let mut m = members(&f.plain);
    let last = m.len() - 1;
    let half = m[last].1.len() / 2;
    m[last].1.truncate(half);
    let e = check(&f, &pack(&m)).unwrap_err();
    assert!(
        matches!(e, PackageError::SizeMismatch { size, declared, .. } if size < declared),
        "{e}"
    );
    assert!(e.to_string().contains("the manifest declares"), "{e}");
    // Replace the signature.
    let mut m = members(&f.plain);
    m[1].1 = vec![0u8; 64];
    assert!(matches!(check(&f, &pack(&m)).unwrap_err(), PackageError::Signature(_)));
    // Replace the checkpoint with a later one of the same ledger.
    let (_, later) = f.de.store.ledger_head().await.unwrap();
    let mut m = members(&f.plain);
    m[4].1 = later.unwrap();
    let e = check(&f, &pack(&m)).unwrap_err();
    assert!(matches!(e, PackageError::Digest { ref path, .. } if path == "checkpoint"), "{e}");

    // Bad archives.
    let truncated = &f.plain[..f.plain.len() / 2];
    assert!(check(&f, truncated).unwrap_err().to_string().contains("truncated"));
    let mut m = members(&f.plain);
    m.push(("../../etc/evil".into(), b"x".to_vec()));
    let e = check(&f, &pack(&m)).unwrap_err();
    assert!(matches!(e, PackageError::PathEscapes(_)), "{e}");
    // A member that claims to be enormous is refused before a byte of it is read.
    let mut bomb = ustar::header("manifest.json", 1 << 40).unwrap().to_vec();
    bomb.extend_from_slice(&[b'{'; 4096]);
    let e = check(&f, &bomb).unwrap_err();
    assert!(matches!(e, PackageError::TooLarge { .. }), "{e}");
    let mut m = members(&f.plain);
    m.swap(0, 1);
    assert!(matches!(check(&f, &pack(&m)).unwrap_err(), PackageError::Layout(_)));
    // The two payloads in the other order: every byte is signed and hashed, yet the encoding
    // is not the one `write_package` emits, so the package would have a second hash.
    let mut m = members(&f.plain);
    let n = m.len();
    assert!(m[n - 2].0.starts_with("payloads/") && m[n - 1].0.starts_with("payloads/"));
    m.swap(n - 2, n - 1);
    let e = check(&f, &pack(&m)).unwrap_err();
    assert!(
        matches!(&e, PackageError::Layout(d) if d.contains("out of order") && d.contains(&m[n - 1].0)),
        "{e}"
    );
    let _ = &f.root;
}

/// The plain package inside an encrypted one.
fn enc_plain(f: &Fixture, enc: &[u8]) -> Vec<u8> {
    let dec = age::Decryptor::new(enc).unwrap();
    let mut r = dec.decrypt(std::iter::once(f.nl_master.identity() as &dyn age::Identity)).unwrap();
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    out
}

#[tokio::test]
async fn flipping_any_byte_is_detected() {
    use proptest::test_runner::{Config, TestRunner};
    let f = fixture().await;
    let enc = std::fs::read(&f.encrypted).unwrap();
    let mut runner = TestRunner::new(Config { cases: 256, ..Config::default() });
    for bytes in [&f.plain, &enc] {
        runner
            .run(&(0..bytes.len(), 0u8..8), |(i, bit)| {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                proptest::prop_assert!(
                    check(&f, &b).is_err(),
                    "flip of bit {} at byte {} went unnoticed",
                    bit,
                    i
                );
                Ok(())
            })
            .unwrap();
    }
}

#[tokio::test]
async fn documented_steps_with_sha256sum_and_openssl() {
    let f = fixture().await;
    for tool in ["openssl", "sha256sum", "tar", "grep"] {
        if std::process::Command::new(tool).arg("--version").output().is_err() {
            assert!(
                std::env::var("ENTENTE_INTEROP").as_deref() != Ok("required"),
                "{tool} missing"
            );
            eprintln!("skipped: {tool} not on PATH");
            return;
        }
    }
    let dir = f.root.join("unpacked");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("package.tar"), &f.plain).unwrap();
    // The steps of docs/package-format.md, "Checking a package without Entente".
    let script = r#"set -eu
tar -xf package.tar
openssl pkeyutl -verify -pubin -inkey sender.pem -rawin -in manifest.json -sigfile manifest.sig
want=$(grep -o '"SHA256SUMS":{"sha256":"[0-9a-f]*"' manifest.json | grep -o '[0-9a-f]\{64\}')
have=$(sha256sum SHA256SUMS | cut -d' ' -f1)
test "$want" = "$have"
sha256sum -c SHA256SUMS
"#;
    let run = |dir: &Path| {
        std::process::Command::new("sh").arg("-c").arg(script).current_dir(dir).output().unwrap()
    };
    let o = run(&dir);
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("Signature Verified Successfully"));
    // The same steps catch a changed payload and a changed manifest.
    let mut m = members(&f.plain);
    m[6].1[0] ^= 1;
    let bad = f.root.join("bad1");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("package.tar"), pack(&m)).unwrap();
    assert!(!run(&bad).status.success());
    let mut m = members(&f.plain);
    let last = m[0].1.len() - 2;
    m[0].1[last] ^= 1;
    let bad = f.root.join("bad2");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("package.tar"), pack(&m)).unwrap();
    assert!(!run(&bad).status.success());
}

#[tokio::test]
async fn case_file_validates_with_case_validate() {
    let f = fixture().await;
    let Some(tool) = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p).map(|d| d.join("case_validate")).find(|p| p.exists())
    }) else {
        assert!(
            std::env::var("ENTENTE_INTEROP").as_deref() != Ok("required"),
            "case_validate missing"
        );
        eprintln!("skipped: case_validate not on PATH");
        return;
    };
    let m = members(&f.plain);
    let (_, case) = m.iter().find(|(n, _)| n == "case.jsonld").unwrap();
    let p = f.root.join("case.jsonld");
    std::fs::write(&p, case).unwrap();
    let o = std::process::Command::new(tool).arg(&p).output().unwrap();
    assert!(
        o.status.success(),
        "case_validate failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Writes the fixture's plain package as the seed of the package fuzz targets
/// (`crates/entente-fuzz/seeds/package.tar`). Run by hand when the package format changes:
/// `cargo test -p entente-node --lib write_fuzz_seed -- --ignored`.
#[tokio::test]
#[ignore = "writes into the source tree; run by hand to refresh the fuzzing seed"]
async fn write_fuzz_seed() {
    let f = fixture().await;
    let to = Path::new(env!("CARGO_MANIFEST_DIR")).join("../entente-fuzz/seeds/package.tar");
    std::fs::write(&to, &f.plain).unwrap();
    assert!(check(&f, &std::fs::read(&to).unwrap()).is_ok());
}

/// A blob damaged after its export was decided: no package is written, and the item's custody
/// chain records the failed integrity check (naming the export it voids) right after the
/// `exported` event, so the chain never shows a package that was not sent.
#[tokio::test]
async fn a_damaged_blob_aborts_the_package_and_the_chain_says_so() {
    let f = fixture().await;
    let inv = f.inv.clone();
    let read = |id: &str| entente_store::evidence::ReadEvidence { id: id.parse().unwrap() };
    let id = f.ids[0].clone();
    let Verdict::Permitted { output: item, .. } =
        f.de.gate.submit(inv.clone(), read(&id), Timestamp::now()).await.unwrap()
    else {
        panic!()
    };
    // Flip one byte in the middle of the item's encrypted blob.
    let blob = walk(&f.de.blob_dir())
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&item.sha256)))
        .unwrap();
    let mut bytes = std::fs::read(&blob).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&blob, bytes).unwrap();

    let spec = PackageSpec {
        items: vec![id.parse().unwrap()],
        to: "NL".parse().unwrap(),
        recipient: None,
        request: "REQ-1".parse().unwrap(),
        request_kind: Some(RequestKind::Production),
        purpose: Purpose::CriminalInvestigation,
        retain_until: None,
    };
    let out = f.root.join("damaged.tar");
    let e = build_package(&f.de, &inv, &spec, &out, Timestamp::now()).await.unwrap_err();
    let text = e.to_string();
    assert!(text.contains("the blob is damaged"), "{text}");
    assert!(text.contains("recorded on the item's custody chain"), "{text}");
    assert!(!out.exists() && !out.with_extension("part").exists());
    let Verdict::Permitted { output: after, .. } =
        f.de.gate.submit(inv, read(&id), Timestamp::now()).await.unwrap()
    else {
        panic!()
    };
    let n = after.chain.len();
    let (exported, verified) = (&after.chain[n - 2], &after.chain[n - 1]);
    assert_eq!(exported.event.event, entente_evidence::CustodyKind::Exported);
    assert_eq!(verified.event.event, entente_evidence::CustodyKind::Verified);
    let reason = &verified.event.reason;
    assert!(reason.contains("integrity check failed while packaging for NL"), "{reason}");
    assert!(
        reason.contains(&format!("recorded at ledger entry {}", exported.ledger_index.unwrap())),
        "{reason}"
    );
    assert!(reason.contains("no package was written"), "{reason}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}
