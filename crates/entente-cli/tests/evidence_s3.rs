#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]
//! Evidence blobs in S3-compatible object storage: a node configured with `[evidence.store]`
//! against a real S3-compatible server (moto_server, from scripts/requirements-interop.txt)
//! adds a file, packages it and the package verifies; the bucket holds the blob encrypted,
//! never the plaintext, and the local blob directory holds nothing.

use crate::common::{BIN, ChildGuard, add_user, free_port, init_node, s, tool};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const KEY_VAR: &str = "ENTENTE_TEST_S3_KEY_ID";
const SECRET_VAR: &str = "ENTENTE_TEST_S3_SECRET";

/// `entente ARGS` with the object store's credentials in its environment.
fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env(KEY_VAR, "testing")
        .env(SECRET_VAR, "testing")
        .env_remove("ENTENTE_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "entente {args:?}: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn local_blobs(dir: &Path) -> usize {
    fn walk(p: &Path) -> usize {
        std::fs::read_dir(p)
            .map(|rd| {
                rd.map(|e| e.unwrap().path()).map(|e| if e.is_dir() { walk(&e) } else { 1 }).sum()
            })
            .unwrap_or(0)
    }
    walk(&dir.join("blobs"))
}

#[tokio::test]
async fn evidence_blobs_in_an_s3_bucket() {
    let Some(moto) = tool("moto_server") else {
        return;
    };
    // The Python beside moto_server has boto3 (a dependency of moto).
    let python = moto.with_file_name("python3");
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut server = ChildGuard(Some(
        Command::new(moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    ));
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(server.try_wait().is_none(), "moto_server exited");
        if http.get(format!("{endpoint}/")).send().await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "moto_server did not answer within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = http.put(format!("{endpoint}/entente-blobs")).send().await.unwrap();
    assert!(r.status().is_success(), "create bucket: {}", r.status());

    let tmp = tempfile::tempdir().unwrap();
    let de = tmp.path().join("de");
    init_node(&de, "DE");
    add_user(&de, "kai", "investigator");
    let token = add_user(&de, "ops", "investigator");
    {
        use std::io::Write as _;
        let mut cfg =
            std::fs::OpenOptions::new().append(true).open(de.join("entente.toml")).unwrap();
        write!(
            cfg,
            "\n[evidence.store]\nkind = \"s3\"\nbucket = \"entente-blobs\"\nendpoint = \"{endpoint}\"\nallow_http = true\nprefix = \"de/\"\naccess_key_id_env = \"{KEY_VAR}\"\nsecret_access_key_env = \"{SECRET_VAR}\"\n"
        )
        .unwrap();
    }
    // The case, through the API of a node run with the credentials.
    let api_port = free_port();
    let mut node = ChildGuard(Some(
        Command::new(BIN)
            .args(["serve", "--data-dir", s(&de), "--listen", &format!("127.0.0.1:{api_port}")])
            .env(KEY_VAR, "testing")
            .env(SECRET_VAR, "testing")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    ));
    let api = format!("http://127.0.0.1:{api_port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.get(format!("{api}/healthz")).send().await.is_err() {
        assert!(node.try_wait().is_none(), "entente serve exited");
        assert!(Instant::now() < deadline, "entente serve did not answer");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = http
        .post(format!("{api}/api/v1/cases"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"id": "C-S3", "title": "S3", "concepts": ["illegal-access"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // An upload through the API lands in the bucket too.
    let r = http
        .post(format!("{api}/api/v1/cases/C-S3/evidence?description=notes&id=EV-API"))
        .bearer_auth(&token)
        .body(b"investigator notes, uploaded".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    node.kill();

    // 17 MiB: a multipart upload of two 8 MiB parts and the rest.
    let content: Vec<u8> =
        (0..17u32 << 20).map(|i| (i.wrapping_mul(2_246_822_519) >> 11) as u8).collect();
    let file = tmp.path().join("mail.mbox");
    std::fs::write(&file, &content).unwrap();
    ok(&[
        "evidence",
        "add",
        s(&file),
        "--data-dir",
        s(&de),
        "--user",
        "kai",
        "--case",
        "C-S3",
        "--description",
        "mailbox",
        "--id",
        "EV-S3",
    ]);
    let pkg = tmp.path().join("answer.tar");
    ok(&[
        "evidence",
        "package",
        "--case",
        "C-S3",
        "--items",
        "EV-S3,EV-API",
        "--to",
        "NL",
        "--request",
        "REQ-1",
        "--request-kind",
        "production",
        "-o",
        s(&pkg),
        "--data-dir",
        s(&de),
        "--user",
        "kai",
    ]);
    let pem = tmp.path().join("de.pem");
    std::fs::write(&pem, ok(&["evidence", "public-key", "--data-dir", s(&de)])).unwrap();
    let out = ok(&["evidence", "verify", s(&pkg), "--sender-key", s(&pem)]);
    assert!(out.contains("verified"), "{out}");
    // The package carries the plaintext (it was read back from the bucket and decrypted).
    let bytes = std::fs::read(&pkg).unwrap();
    assert!(bytes.windows(64).any(|w| w == &content[1 << 20..(1 << 20) + 64]));

    // In the bucket: two blobs under the prefix, age-encrypted, not the plaintext.
    let list = http
        .get(format!("{endpoint}/entente-blobs?list-type=2&prefix=de/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let keys: Vec<&str> =
        list.split("<Key>").skip(1).filter_map(|k| k.split("</Key>").next()).collect();
    assert_eq!(keys.len(), 2, "{list}");
    for k in &keys {
        assert!(k.starts_with("de/blobs/") && k.ends_with(".age"), "{k}");
        // Read back as any S3 client would (boto3, installed with moto), signed.
        let dest = tmp.path().join("fetched.bin");
        let o = Command::new(&python)
            .args([
                "-c",
                "import sys, boto3\nboto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing').download_file('entente-blobs', sys.argv[2], sys.argv[3])",
                &endpoint,
                k,
                s(&dest),
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "boto3: {}", String::from_utf8_lossy(&o.stderr));
        let blob = std::fs::read(&dest).unwrap();
        assert!(
            blob.starts_with(b"age-encryption.org/v1"),
            "{k}: {:?}",
            String::from_utf8_lossy(&blob[..blob.len().min(300)])
        );
        assert!(!blob.windows(64).any(|w| w == &content[1 << 20..(1 << 20) + 64]), "{k}");
        assert!(!blob.windows(12).any(|w| w == b"investigator"), "{k}");
    }
    assert_eq!(local_blobs(&de), 0, "nothing in the local blob directory");
    let out = ok(&["evidence", "custody", "EV-S3", "--data-dir", s(&de)]);
    assert!(out.contains("exported"), "{out}");
    server.kill();
}
