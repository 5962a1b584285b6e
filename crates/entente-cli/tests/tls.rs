//! TLS of both listeners against real node processes on 127.0.0.1 (issue 16's defences):
//! the hybrid post-quantum key exchange negotiated between two nodes and on the API, the API
//! over HTTPS (`serve --tls`) for Entente's own client and an outside one (curl, OpenSSL),
//! and plain HTTP refused beyond loopback.

use crate::common::{Server, client_as, entente, free_port, init_node, s, stderr, tool};
use crate::federation::Fed;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Opens a TLS connection to `addr` with `who`'s node client configuration (the one its
/// process uses towards a partner), pinned to `server`'s certificate; answers the negotiated
/// group and the answer to `GET path`.
async fn handshake(who: &Path, server: &Path, addr: &str, path: &str) -> (String, String) {
    let pem = std::fs::read_to_string(server.join("node.cert.pem")).unwrap();
    let config = entente_node::danger::client_config_as(who, &pem).unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .unwrap()
        .unwrap();
    let group = tls.get_ref().1.negotiated_key_exchange_group().map(|g| format!("{:?}", g.name()));
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer)).await;
    (group.unwrap_or_default(), String::from_utf8_lossy(&answer).into_owned())
}

async fn metrics(server: &Server, client: &reqwest::Client) -> String {
    let r = client.get(format!("{}/metrics", server.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

fn handshakes(metrics: &str, endpoint: &str, group: &str) -> u64 {
    let prefix =
        format!("entente_tls_handshakes_total{{endpoint=\"{endpoint}\",group=\"{group}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(&prefix)).map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test]
async fn two_nodes_negotiate_the_hybrid_post_quantum_group() {
    let tmp = tempfile::tempdir().unwrap();
    let nl = Fed::new(tmp.path(), "NL");
    let de = Fed::new(tmp.path(), "DE");
    de.pin(&nl);
    let de_api = de.start().await;
    let fed = format!("127.0.0.1:{}", de.port);
    // NL's own client configuration, towards DE's federation port (mutual TLS).
    let (group, answer) = handshake(&nl.dir, &de.dir, &fed, "/federation/v1/checkpoint").await;
    assert_eq!(group, "X25519MLKEM768");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // And DE counted it on its side, as `/metrics` shows.
    let m = metrics(&de_api, &reqwest::Client::new()).await;
    assert!(handshakes(&m, "federation", "X25519MLKEM768") >= 1, "{m}");
    assert_eq!(handshakes(&m, "federation", "X25519"), 0, "{m}");
}

#[tokio::test]
async fn the_api_serves_https_hybrid_first_and_classical_clients_still_connect() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nl");
    init_node(&dir, "NL");
    let server = Server::start_with(&dir, &["--tls"], Duration::from_secs(30)).await;
    let addr = server.url.trim_start_matches("https://").to_owned();
    // Entente's client (rustls, aws-lc-rs): the hybrid group.
    let (group, answer) = handshake(&dir, &dir, &addr, "/healthz").await;
    assert_eq!(group, "X25519MLKEM768");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"party\":\"NL\""), "{answer}");
    // Plain HTTP to the HTTPS port gets no API answer.
    let plain = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let r = plain.get(format!("http://{addr}/healthz")).send().await;
    assert!(r.is_err() || r.is_ok_and(|r| r.status() != 200));
    // An outside client: curl with OpenSSL, trusting the node's certificate. OpenSSL 3.0
    // offers no ML-KEM, so this handshake is classical: the hybrid is preferred, not required.
    let mut classical = 0;
    if let Some(curl) = tool("curl") {
        let o = std::process::Command::new(curl)
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(dir.join("node.cert.pem"))
            .arg(format!("{}/healthz", server.url))
            .output()
            .unwrap();
        let body = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "curl: {}", String::from_utf8_lossy(&o.stderr));
        assert!(body.contains("\"party\":\"NL\""), "{body}");
        classical = 1;
    }
    let m = metrics(&server, &crate::common::https_client(&dir)).await;
    assert!(handshakes(&m, "api", "X25519MLKEM768") >= 2, "{m}");
    let classical_seen = handshakes(&m, "api", "X25519") + handshakes(&m, "api", "secp256r1");
    assert!(classical_seen >= classical, "{m}");
}

#[tokio::test]
async fn plain_http_beyond_loopback_and_unusable_certificates_are_refused_before_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nl");
    init_node(&dir, "NL");
    // Checked before anything listens: nothing is bound on 0.0.0.0.
    let any = format!("0.0.0.0:{}", free_port());
    let o = entente(&["serve", "--data-dir", s(&dir), "--listen", &any]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains(&any) && err.contains("--tls"), "{err}");
    assert!(err.contains("plain_http_beyond_loopback"), "{err}");
    // A configured certificate that is not there is named.
    let config = dir.join("entente.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[api]\ncert = \"api-cert.pem\"\nkey = \"api-key.pem\"\n");
    std::fs::write(&config, text).unwrap();
    let lo = format!("127.0.0.1:{}", free_port());
    let o = entente(&["serve", "--data-dir", s(&dir), "--listen", &lo, "--tls"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("api-cert.pem"), "{}", stderr(&o));
    // Only one of the two is a configuration error that says what is missing.
    let text = std::fs::read_to_string(&config).unwrap().replace("key = \"api-key.pem\"\n", "");
    std::fs::write(&config, text).unwrap();
    let o = entente(&["serve", "--data-dir", s(&dir), "--listen", &lo, "--tls"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("`key`"), "{}", stderr(&o));
}

/// Another party's node certificate configured for the API serves HTTPS with it: the chain
/// and key come from `[api]`, not from the node's identity.
#[tokio::test]
async fn a_configured_certificate_is_served() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nl");
    init_node(&dir, "NL");
    let other = tmp.path().join("web");
    init_node(&other, "NL");
    let config = dir.join("entente.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[api]\ntls = true\ncert = \"{}\"\nkey = \"{}\"\n",
        s(&other.join("node.cert.pem")),
        s(&other.join("node.key.pem"))
    ));
    std::fs::write(&config, text).unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = crate::common::ChildGuard(Some(
        std::process::Command::new(crate::common::BIN)
            .args(["serve", "--data-dir", s(&dir), "--listen", &listen])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    ));
    // Pinned to the configured certificate, the handshake succeeds; pinned to the node's own,
    // it fails.
    let good = client_as(&dir, &other);
    let mut served = false;
    for _ in 0..200 {
        if let Ok(r) = good.get(format!("https://{listen}/healthz")).send().await {
            served = r.status() == 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "the configured certificate was not served");
    assert!(client_as(&dir, &dir).get(format!("https://{listen}/healthz")).send().await.is_err());
    child.kill();
}

/// The node's key is PKCS#8 v1 (the private key alone), which OpenSSL 3.0 and Python's
/// `cryptography` read, and it is the key of the node's certificate.
#[test]
fn the_node_key_is_pkcs8_v1_that_openssl_and_python_read() {
    use base64::Engine as _;
    let tmp = tempfile::tempdir().unwrap();
    let nl = tmp.path().join("nl");
    init_node(&nl, "NL");
    let key = nl.join("node.key.pem");
    let pem = std::fs::read_to_string(&key).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(body).unwrap();
    // SEQUENCE { INTEGER 0 (v1), AlgorithmIdentifier Ed25519, OCTET STRING { key } }: 48 bytes.
    assert_eq!(der.len(), 48, "{pem}");
    assert_eq!(&der[2..5], &[2, 1, 0], "version is not v1: {pem}");

    let Some(openssl) = tool("openssl") else { return };
    let run = |args: &[&str]| {
        let o = std::process::Command::new(&openssl).args(args).output().unwrap();
        assert!(o.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let from_key = run(&["pkey", "-in", s(&key), "-pubout"]);
    let from_cert = run(&["x509", "-in", s(&nl.join("node.cert.pem")), "-pubkey", "-noout"]);
    assert_eq!(from_key, from_cert);

    let Some(python) = tool("python3") else { return };
    let script = "import sys\n\
        from cryptography.hazmat.primitives import serialization as s\n\
        k = s.load_pem_private_key(open(sys.argv[1], 'rb').read(), None)\n\
        print(k.public_key().public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo).decode(), end='')\n";
    let o = std::process::Command::new(python).args(["-c", script, s(&key)]).output().unwrap();
    assert!(o.status.success(), "cryptography: {}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8(o.stdout).unwrap(), from_key);
}
