#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]
//! Threat intelligence against a real node: the OASIS taxii2-client driving our TAXII 2.1
//! server, the OASIS stix2 library parsing what it serves, stix2-validator on what we export,
//! and bad input (media types, sizes, forged cursors, invalid STIX) refused with TAXII errors
//! and nothing half-imported.

use crate::common::{
    Server, add_user, entente, entente_ok, free_port, init_node, s, stderr, stdout, tool,
};
use std::path::Path;
use std::time::Duration;

const TAXII: &str = "application/taxii+json;version=2.1";

fn node_with_collection(dir: &Path) -> (String, String) {
    init_node(dir, "NL");
    let token = add_user(dir, "cert", "csirt");
    let o = entente_ok(&[
        "intel",
        "collection",
        "--data-dir",
        s(dir),
        "--title",
        "LANTERN indicators",
        "--parties",
        "DE,US",
    ]);
    (token, stdout(&o).trim().to_owned())
}

fn validate(validator: &Path, file: &Path) {
    let o = std::process::Command::new(validator).arg(file).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success() && text.contains("STIX JSON: Valid"), "stix2_validator:\n{text}");
    // No warnings: every indicator we serve has a name and a description, and markings are
    // the standard TLP ones.
    assert!(!text.contains("[!] Warning"), "stix2_validator warnings:\n{text}");
}

#[tokio::test]
async fn taxii2_client_stix2_and_validator_against_our_server() {
    let (Some(python), Some(validator)) = (tool("python3"), tool("stix2_validator")) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nl");
    let (token, coll) = node_with_collection(&dir);
    // TAXII 2.1 runs over HTTPS (section 1.6.1): the client trusts the node's certificate.
    let server = Server::start_with(&dir, &["--tls"], Duration::from_secs(30)).await;
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/taxii_client.py");
    let out = tmp.path().join("served.json");
    let o = std::process::Command::new(&python)
        .args([s(&script), &server.url, "cert", &token, &coll, s(&out)])
        .env("ENTENTE_CA", dir.join("node.cert.pem"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "taxii_client.py failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    validate(&validator, &out);
    // Our own export of the collection validates too, and our client pulls the same objects.
    drop(server);
    let export = tmp.path().join("export.json");
    entente_ok(&[
        "intel",
        "export",
        "--data-dir",
        s(&dir),
        "--collection",
        &coll,
        "--out",
        s(&export),
    ]);
    validate(&validator, &export);
    let server = Server::start(&dir, Duration::from_secs(30)).await;
    let pulled = tmp.path().join("pulled.json");
    let root = format!("{}/taxii2/api/", server.url);
    entente_ok(&[
        "intel",
        "pull",
        &root,
        &coll,
        "--token",
        &token,
        "--limit",
        "60",
        "--out",
        s(&pulled),
    ]);
    let a: serde_json::Value = serde_json::from_slice(&std::fs::read(&export).unwrap()).unwrap();
    let b: serde_json::Value = serde_json::from_slice(&std::fs::read(&pulled).unwrap()).unwrap();
    assert_eq!(a["objects"], b["objects"]);
    assert_eq!(a["objects"].as_array().unwrap().len(), 250);
}

fn indicator(n: u32, extra: &str) -> String {
    format!(
        r#"{{"type":"indicator","spec_version":"2.1","id":"indicator--00000000-0000-4000-8000-{n:012}","created":"2026-11-01T00:00:00.000Z","modified":"2026-11-01T00:00:00.000Z","name":"n","description":"d","pattern":"[ipv4-addr:value = '198.51.100.{n}']","pattern_type":"stix","valid_from":"2026-11-01T00:00:00Z"{extra}}}"#
    )
}

/// Issue 16 finding 7: the status resource of an import was one unbounded document, readable
/// by every role, listing the ids of RED objects. It is now paged and only its requester's.
#[tokio::test]
async fn a_status_is_paged_and_only_its_requester_reads_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nl");
    let (token, coll) = node_with_collection(&dir);
    let other = add_user(&dir, "cert2", "csirt");
    let server = Server::start(&dir, Duration::from_secs(30)).await;
    let http = reqwest::Client::new();
    let objs: Vec<String> = (1..=3)
        .map(|n| {
            indicator(
                n,
                r#","object_marking_refs":["marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"],"x_entente_recipients":["DE"]"#,
            )
        })
        .collect();
    let r = http
        .post(format!("{}/taxii2/api/collections/{coll}/objects/", server.url))
        .bearer_auth(&token)
        .header("Content-Type", TAXII)
        .body(format!(r#"{{"objects":[{}]}}"#, objs.join(",")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let posted: serde_json::Value = r.json().await.unwrap();
    assert_eq!(posted["successes"].as_array().unwrap().len(), 3, "{posted}");
    assert!(posted.get("next").is_none(), "{posted}");
    let id = posted["id"].as_str().unwrap().to_owned();
    let status = format!("{}/taxii2/api/status/{id}/", server.url);
    let get = |q: &str, t: &str| http.get(format!("{status}{q}")).bearer_auth(t).send();

    let r = get("?limit=2", &token).await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["content-type"].to_str().unwrap()), (200, TAXII));
    let p1: serde_json::Value = r.json().await.unwrap();
    assert_eq!((p1["success_count"].as_u64(), p1["next"].as_str()), (Some(3), Some("2")), "{p1}");
    assert_eq!(p1["successes"].as_array().unwrap().len(), 2, "{p1}");
    let p2: serde_json::Value = get("?limit=2&next=2", &token).await.unwrap().json().await.unwrap();
    assert_eq!(p2["successes"].as_array().unwrap().len(), 1, "{p2}");
    assert!(p2.get("next").is_none(), "{p2}");
    let mut seen: Vec<&serde_json::Value> = p1["successes"].as_array().unwrap().iter().collect();
    seen.extend(p2["successes"].as_array().unwrap());
    assert_eq!(seen, posted["successes"].as_array().unwrap().iter().collect::<Vec<_>>());

    // Another user of the same role sees no such status: not even that it exists.
    let r = get("", &other).await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let body = r.text().await.unwrap();
    assert!(body.contains("\"http_status\":\"404\"") && !body.contains("indicator--"), "{body}");
    // Bad paging parameters are TAXII errors naming the parameter.
    for (q, needle) in [("?limit=0", "limit"), ("?next=x", "next"), ("?page=2", "`page`")] {
        let r = get(q, &token).await.unwrap();
        assert_eq!(r.status().as_u16(), 400, "{q}");
        let text = r.text().await.unwrap();
        assert!(text.contains(needle), "{q}: {text}");
    }
}

#[tokio::test]
async fn bad_input_is_refused_with_taxii_errors_and_nothing_half_imported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nl");
    let (token, coll) = node_with_collection(&dir);
    let server = Server::start(&dir, Duration::from_secs(30)).await;
    let http = reqwest::Client::new();
    let objects = format!("{}/taxii2/api/collections/{coll}/objects/", server.url);
    let post = |body: String, ct: &str| {
        http.post(&objects)
            .bearer_auth(&token)
            .header("Accept", TAXII)
            .header("Content-Type", ct)
            .body(body)
    };
    let env = |objs: &[String]| format!(r#"{{"objects":[{}]}}"#, objs.join(","));
    async fn expect(req: reqwest::RequestBuilder, status: u16, needle: &str) {
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status);
        assert_eq!(r.headers()["content-type"], TAXII);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["http_status"], status.to_string(), "{body}");
        let text = body.to_string();
        assert!(text.contains(needle), "expected `{needle}` in {text}");
    }
    // A good object first, so that refusals can be seen to change nothing.
    let r = post(env(&[indicator(1, "")]), TAXII).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 202);

    expect(post("{\"objects\": [".into(), TAXII), 400, "invalid JSON at line 1").await;
    let missing = indicator(2, "").replace(r#""pattern_type":"stix","#, "");
    expect(
        post(env(&[indicator(3, ""), missing]), TAXII),
        422,
        "objects[1] (indicator--00000000-0000-4000-8000-000000000002): pattern_type: required",
    )
    .await;
    let spec = indicator(4, "").replace(r#""spec_version":"2.1""#, r#""spec_version":"2.0""#);
    expect(post(env(&[spec]), TAXII), 422, "spec_version: expected \\\"2.1\\\"").await;
    let pattern =
        indicator(5, "").replace("[ipv4-addr:value = '198.51.100.5']", "[ipv4-addr:value = ]");
    expect(post(env(&[pattern]), TAXII), 422, "pattern: not a valid STIX pattern").await;
    let changed = indicator(6, "").replace("198.51.100.6", "203.0.113.6");
    expect(post(env(&[indicator(6, ""), changed]), TAXII), 422, "different content").await;
    // Same id and version as the stored object 1, other content: the whole envelope is refused.
    let clash = indicator(1, "").replace("198.51.100.1", "203.0.113.1");
    expect(post(env(&[indicator(7, ""), clash]), TAXII), 409, "nothing was imported").await;
    expect(post(env(&[indicator(8, "")]), "application/json"), 415, "Content-Type").await;
    expect(
        http.get(&objects).bearer_auth(&token).header("Accept", "application/json"),
        406,
        "application/taxii+json",
    )
    .await;
    // An envelope announced above max_content_length is refused before its body is read (a
    // client writing the whole body may see the connection close first, so only the start is
    // written here).
    {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let addr = server.url.trim_start_matches("http://");
        let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
        let path = objects.trim_start_matches(&server.url);
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nAccept: {TAXII}\r\nContent-Type: {TAXII}\r\nContent-Length: {}\r\n\r\n{{\"objects\":[",
            17 << 20
        );
        sock.write_all(head.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = sock.read(&mut buf).await.unwrap_or(0);
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got);
            if n == 0 || text.contains("max_content_length") {
                break;
            }
        }
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 413"), "{text}");
        assert!(
            text.contains("max_content_length") && text.contains("\"http_status\":\"413\""),
            "{text}"
        );
    }
    expect(http.get(&objects), 401, "Authentication required").await;
    expect(http.get(&objects).basic_auth("cert", Some("wrong")), 401, "Authentication required")
        .await;
    // An anonymous import is refused before its body is read: the caller announces 10 MiB of
    // `{}` objects and writes only the start; the node answers 401 at once (had it waited for
    // the body, nothing would come back before the bounded wait ends).
    {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let addr = server.url.trim_start_matches("http://");
        let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
        let path = objects.trim_start_matches(&server.url);
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: {TAXII}\r\nContent-Type: {TAXII}\r\nContent-Length: {}\r\n\r\n{{\"objects\":[{{}},{{}},",
            10 << 20
        );
        sock.write_all(head.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let read = async {
            loop {
                let n = sock.read(&mut buf).await.unwrap_or(0);
                got.extend_from_slice(&buf[..n]);
                if n == 0 || String::from_utf8_lossy(&got).contains("http_status") {
                    break;
                }
            }
        };
        let answered = tokio::time::timeout(std::time::Duration::from_secs(20), read).await;
        let text = String::from_utf8_lossy(&got);
        assert!(answered.is_ok(), "no answer before the body was sent: {text}");
        assert!(text.starts_with("HTTP/1.1 401"), "{text}");
        assert!(text.contains("\"http_status\":\"401\""), "{text}");
    }

    // Cursors: a real one works, a forged one or one from another query is a 400.
    for n in 10..15 {
        assert_eq!(
            post(env(&[indicator(n, "")]), TAXII).send().await.unwrap().status().as_u16(),
            202
        );
    }
    let page: serde_json::Value = http
        .get(format!("{objects}?limit=2"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let next = page["next"].as_str().unwrap().to_owned();
    // The token needs no server state: a second server process on the same node continues
    // the paging (and so would a restarted one).
    let second = Server::start(&dir, Duration::from_secs(30)).await;
    let objects2 = format!("{}/taxii2/api/collections/{coll}/objects/", second.url);
    let r = http
        .get(format!("{objects2}?limit=2&next={next}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let page2: serde_json::Value = r.json().await.unwrap();
    let ids = |p: &serde_json::Value| -> Vec<String> {
        p["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (first_ids, second_ids) = (ids(&page), ids(&page2));
    assert_eq!(second_ids.len(), 2);
    assert!(second_ids.iter().all(|i| !first_ids.contains(i)), "{first_ids:?} {second_ids:?}");
    drop(second);
    let r = http
        .get(format!("{objects}?limit=2&next={next}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    expect(
        http.get(format!("{objects}?limit=2&match[type]=malware&next={next}")).bearer_auth(&token),
        400,
        "another query",
    )
    .await;
    let mut forged = next.clone().into_bytes();
    forged[3] ^= 1;
    let forged = String::from_utf8(forged).unwrap();
    expect(http.get(format!("{objects}?next={forged}")).bearer_auth(&token), 400, "forged").await;

    // After all refusals: exactly the six good objects are held.
    let man: serde_json::Value = http
        .get(format!("{}/taxii2/api/collections/{coll}/manifest/", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(man["objects"].as_array().unwrap().len(), 6, "{man}");

    // The CLI refuses a bad bundle with exit 2, naming the object and property.
    let bad = tmp.path().join("bad.json");
    std::fs::write(
        &bad,
        format!(r#"{{"type":"bundle","id":"bundle--5d0092c5-5f74-4287-9642-33f4c354e56d","objects":[{},{}]}}"#, indicator(20, ""), indicator(21, "").replace(r#""valid_from":"2026-11-01T00:00:00Z""#, r#""valid_from":"yesterday""#)),
    )
    .unwrap();
    drop(server);
    let o = entente(&["intel", "import", s(&bad), "--data-dir", s(&dir), "--collection", &coll]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o)
            .contains("objects[1] (indicator--00000000-0000-4000-8000-000000000021): valid_from"),
        "{}",
        stderr(&o)
    );
}

/// Kills a child process when dropped.
struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `entente intel push` and `entente intel pull` against medallion (OASIS, memory backend),
/// a TAXII 2.1 server the project did not write: what is pushed in envelopes comes back,
/// paged, with the same objects.
#[tokio::test]
async fn intel_push_and_pull_against_medallion() {
    let Some(medallion) = tool("medallion") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let coll = "91a7b528-80eb-42ed-a74d-c6fbd5a26116";
    let root = format!("http://127.0.0.1:{port}/api1/");
    let data = serde_json::json!({
        "/discovery": {"title": "medallion", "description": "", "contact": "",
            "default": root, "api_roots": [root]},
        "api1": {
            "information": {"title": "api1", "description": "", "versions": [TAXII], "max_content_length": 10485760},
            "status": [],
            "collections": [{"id": coll, "title": "interop", "description": "", "can_read": true, "can_write": true,
                "media_types": ["application/stix+json;version=2.1"], "objects": [], "manifest": []}]
        }
    });
    let data_path = tmp.path().join("data.json");
    std::fs::write(&data_path, data.to_string()).unwrap();
    let conf = serde_json::json!({
        "backend": {"module": "medallion.backends.memory_backend", "module_class": "MemoryBackend",
            "filename": data_path, "session_timeout": 600},
        "users": {"analyst": "secret"},
        "taxii": {"max_page_size": 100}
    });
    let conf_path = tmp.path().join("medallion.json");
    std::fs::write(&conf_path, conf.to_string()).unwrap();
    let _server = Kill(
        std::process::Command::new(&medallion)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--log-level", "ERROR"])
            .arg(&conf_path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..200 {
        let r = http
            .get(format!("http://127.0.0.1:{port}/taxii2/"))
            .basic_auth("analyst", Some("secret"))
            .header("accept", TAXII)
            .send()
            .await;
        if r.is_ok_and(|r| r.status().is_success()) {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "medallion did not start");

    let objects: Vec<String> = (1..=250).map(|n| indicator(n, "")).collect();
    let bundle = format!(
        r#"{{"type":"bundle","id":"bundle--00000000-0000-4000-8000-000000000001","objects":[{}]}}"#,
        objects.join(",")
    );
    let file = tmp.path().join("bundle.json");
    std::fs::write(&file, bundle).unwrap();
    let o = entente_ok(&[
        "intel",
        "push",
        &root,
        coll,
        s(&file),
        "--token",
        "analyst:secret",
        "--per-envelope",
        "100",
    ]);
    assert!(stdout(&o).contains("pushed 250 objects: 250 stored"), "{}", stdout(&o));

    let out = tmp.path().join("pulled.json");
    entente_ok(&[
        "intel",
        "pull",
        &root,
        coll,
        "--token",
        "analyst:secret",
        "--limit",
        "100",
        "--out",
        s(&out),
    ]);
    let pulled: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let mut ids: Vec<&str> =
        pulled["objects"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    let mut want: Vec<String> =
        (1..=250).map(|n| format!("indicator--00000000-0000-4000-8000-{n:012}")).collect();
    want.sort_unstable();
    assert_eq!(ids, want, "medallion gave back other objects");
    // A wrong password is reported, and nothing is written.
    let bad = entente(&[
        "intel",
        "pull",
        &root,
        coll,
        "--token",
        "analyst:wrong",
        "--out",
        s(&tmp.path().join("x.json")),
    ]);
    assert!(!bad.status.success(), "{}", stdout(&bad));
    assert!(!stderr(&bad).is_empty());
}
