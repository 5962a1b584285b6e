//! The web interface in a real browser: Debian's Chromium, driven through its chromedriver
//! (W3C WebDriver, spoken here over reqwest), against a real `entente serve` on loopback.
//! axe-core checks every page the test visits against WCAG 2.1 A and AA.
//!
//! `scripts/test.sh` installs `chromium` and `chromium-driver` (apt) and axe-core (the copy
//! bundled in the `axe-playwright-python` wheel, installed without its dependencies into
//! `.venv`); with `ENTENTE_BROWSER=required` a missing piece is a failure, not a skip.

use crate::common::{
    ChildGuard, Server, add_user, browser_required, chromium, free_port, init_node, installed,
};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// chromedriver and chromium, when installed.
fn browser() -> Option<(&'static str, &'static str)> {
    let driver =
        installed("chromedriver", &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"])?;
    Some((driver, chromium()?))
}

/// axe-core's `axe.min.js`: `ENTENTE_AXE`, or the copy in `.venv` that `scripts/pyenv.sh`
/// installs.
fn axe_source() -> Option<String> {
    let path = std::env::var_os("ENTENTE_AXE").map(PathBuf::from).or_else(|| {
        let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/lib");
        std::fs::read_dir(lib).ok()?.flatten().find_map(|py| {
            let p = py.path().join("site-packages/axe_playwright_python/axe.min.js");
            p.exists().then_some(p)
        })
    });
    match path.and_then(|p| std::fs::read_to_string(p).ok()) {
        Some(s) => Some(s),
        None => {
            assert!(
                !browser_required(),
                "axe-core not found (ENTENTE_AXE or .venv) and ENTENTE_BROWSER=required"
            );
            eprintln!("skipped: axe-core not found");
            None
        }
    }
}

/// A W3C WebDriver session of headless Chromium.
struct Browser {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`.
    session: String,
    _driver: ChildGuard,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start(driver: &str, chromium: &str) -> Browser {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        let port = free_port();
        let child = std::process::Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let guard = ChildGuard(Some(child));
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(format!("{base}/status")).send().await
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == json!(true)
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not answer /status within 20 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900",
                         format!("--user-data-dir={}", profile.path().display())],
            },
        }}});
        let v: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = v["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {v}"));
        Browser { http, session: format!("{base}/session/{id}"), _driver: guard, _profile: profile }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut r = self.http.request(method, format!("{}{path}", self.session));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let v: Value = r.send().await.unwrap().json().await.unwrap();
        assert!(v["value"]["error"].is_null(), "webdriver {path}: {v}");
        v["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.cmd(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Value {
        self.cmd(reqwest::Method::GET, path, None).await
    }

    async fn goto(&self, url: &str) {
        self.post("/url", json!({"url": url})).await;
    }

    async fn url(&self) -> String {
        self.get("/url").await.as_str().unwrap().to_owned()
    }

    async fn text(&self) -> String {
        self.script("return document.body.innerText", json!([])).await.as_str().unwrap().to_owned()
    }

    async fn script(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": args})).await
    }

    /// The element `css` selects (the first).
    async fn find(&self, css: &str) -> String {
        let v = self.post("/element", json!({"using": "css selector", "value": css})).await;
        v.as_object().and_then(|o| o.values().next()).and_then(Value::as_str).unwrap().to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.post(&format!("/element/{e}/value"), json!({"text": text})).await;
    }

    async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.post(&format!("/element/{e}/click"), json!({})).await;
    }

    /// Keys sent to whatever has the focus (`\u{E004}` Tab, `\u{E007}` Enter).
    async fn keys(&self, keys: &str) {
        let active = self.get("/element/active").await;
        let e = active.as_object().and_then(|o| o.values().next()).and_then(Value::as_str).unwrap();
        self.post(&format!("/element/{e}/value"), json!({"text": keys})).await;
    }

    /// Presses Tab until the element `css` has the focus (at most 20 times); returns how many.
    async fn tab_to(&self, css: &str) -> usize {
        for n in 1..=20 {
            self.keys("\u{E004}").await;
            let here = self
                .script("return document.activeElement.matches(arguments[0])", json!([css]))
                .await;
            if here == json!(true) {
                return n;
            }
        }
        panic!("{css} never got the focus by Tab");
    }

    async fn screenshot(&self, name: &str) {
        use base64::Engine as _;
        let png = self.get("/screenshot").await;
        let bytes =
            base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG screenshot");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), bytes).unwrap();
    }

    /// Runs axe-core on the current page (WCAG 2.0/2.1, A and AA) and fails on any violation.
    async fn axe(&self, axe: &str, page: &str) {
        self.script(&format!("{axe}\n;return typeof axe;"), json!([])).await;
        let script = "const done = arguments[arguments.length - 1];\
            axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})\
              .then(r => done(JSON.stringify({passes: r.passes.length, violations: r.violations.map(v =>\
                 ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' '))}))})))\
              .catch(e => done(JSON.stringify({error: String(e)})));";
        let out = self.post("/execute/async", json!({"script": script, "args": []})).await;
        let r: Value = serde_json::from_str(out.as_str().unwrap()).unwrap();
        assert!(r["error"].is_null(), "axe on {page}: {r}");
        assert!(r["passes"].as_u64().unwrap() > 0, "axe ran no rule on {page}: {r}");
        assert_eq!(r["violations"], json!([]), "axe-core finds WCAG 2.1 AA violations on {page}");
    }

    async fn end(self) {
        let _ = self.http.delete(&self.session).send().await;
    }
}

/// The size of the node's ledger from its public checkpoint (line 2 of the signed note).
async fn ledger_size(api: &str) -> u64 {
    let note =
        reqwest::get(format!("{api}/ledger/checkpoint")).await.unwrap().text().await.unwrap();
    note.lines().nth(1).and_then(|l| l.parse().ok()).unwrap_or_else(|| panic!("{note}"))
}

/// Waits (bounded) until the page's URL satisfies `ok`, after a click or a key that navigates.
async fn wait_for_url(b: &Browser, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let u = b.url().await;
        if ok(&u) || Instant::now() > deadline {
            return u;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (bounded) until the script `cond` returns true on the current page, after a click
/// or a key that posts a form and stays at the same URL.
async fn wait_for(b: &Browser, cond: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.script(&format!("return Boolean({cond})"), json!([])).await != json!(true) {
        assert!(Instant::now() < deadline, "never true: {cond}\n{}", b.text().await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Signs in through the form, by mouse.
async fn sign_in(b: &Browser, api: &str, token: &str) {
    b.goto(&format!("{api}/ui/sign-in")).await;
    b.type_into("#token", token).await;
    b.click("form[action='/ui/sign-in'] button[type=submit]").await;
    let u = wait_for_url(b, |u| u.ends_with("/ui/")).await;
    assert!(u.ends_with("/ui/"), "signed in, at home: {u}");
}

async fn sign_out(b: &Browser) {
    b.click("form[action='/ui/sign-out'] button").await;
    let u = wait_for_url(b, |u| u.contains("/ui/sign-in")).await;
    assert!(u.contains("/ui/sign-in"), "{u}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_in_chromium_with_axe_core_and_the_keyboard() {
    let (Some((driver, chromium)), Some(axe)) = (browser(), axe_source()) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nl");
    init_node(&dir, "NL");
    let eva = add_user(&dir, "eva", "investigator");
    let carl = add_user(&dir, "carl", "csirt");
    let otto = add_user(&dir, "otto", "auditor");
    let pia = add_user(&dir, "pia", "central-authority");
    let server = Server::start(&dir, Duration::from_secs(20)).await;
    let api = server.url.clone();
    let b = Browser::start(driver, chromium).await;

    // Signed out, every page leads to the sign-in form.
    b.goto(&format!("{api}/ui/")).await;
    assert!(b.url().await.contains("/ui/sign-in"), "{}", b.url().await);
    b.axe(&axe, "sign-in").await;
    b.screenshot("sign-in").await;

    // A wrong token: refused, said next to the field, recorded nowhere.
    let before = ledger_size(&api).await;
    b.type_into("#token", &"0".repeat(64)).await;
    b.click("form[action='/ui/sign-in'] button[type=submit]").await;
    wait_for(&b, "document.querySelector('#token-error')").await;
    let page = b.text().await;
    assert!(page.contains("does not sign anyone in"), "{page}");
    assert_eq!(
        b.script("return document.querySelector('#token').getAttribute('aria-invalid')", json!([]))
            .await,
        json!("true")
    );
    b.axe(&axe, "sign-in with an error").await;
    assert_eq!(ledger_size(&api).await, before, "a failed sign-in writes nothing");

    // The keyboard alone: the skip link comes first, then the token field; its focus ring shows;
    // Enter signs in.
    b.goto(&format!("{api}/ui/sign-in")).await;
    assert_eq!(b.tab_to("a.skip").await, 1, "the skip link is first in the tab order");
    b.tab_to("#token").await;
    let ring = b
        .script(
            "const s = getComputedStyle(document.activeElement); \
             return [s.outlineStyle, s.outlineWidth];",
            json!([]),
        )
        .await;
    assert!(ring[0] != json!("none") && ring[1] != json!("0px"), "a visible focus ring: {ring}");
    b.keys(&eva).await;
    b.keys("\u{E007}").await;
    let home = wait_for_url(&b, |u| u.ends_with("/ui/")).await;
    assert!(home.ends_with("/ui/"), "{home}");
    assert!(b.text().await.contains("eva"), "signed in as eva");
    b.axe(&axe, "investigator's home").await;
    b.screenshot("home-investigator").await;

    // Open a case through the form: first with its fields empty (errors beside the fields),
    // then filled in by keyboard. One ledger entry for the case, one for the page view.
    b.click("a[href='/ui/cases/new']").await;
    wait_for_url(&b, |u| u.ends_with("/ui/cases/new")).await;
    b.axe(&axe, "case form").await;
    let before = ledger_size(&api).await;
    b.click("form[action='/ui/cases'] button[type=submit]").await;
    wait_for(&b, "document.querySelector('p.error')").await;
    let errors = b.script("return document.querySelectorAll('p.error').length", json!([])).await;
    assert!(
        errors.as_u64().unwrap() >= 2,
        "errors beside the fields: {errors}\n{}",
        b.text().await
    );
    b.axe(&axe, "case form with errors").await;
    assert_eq!(ledger_size(&api).await, before, "a refused form writes nothing");
    b.goto(&format!("{api}/ui/cases/new")).await;
    b.tab_to("#id").await;
    b.keys("LANTERN").await;
    b.tab_to("#title").await;
    b.keys("Ransomware against hospitals").await;
    b.tab_to("form[action='/ui/cases'] button[type=submit]").await;
    b.keys("\u{E007}").await;
    let case = wait_for_url(&b, |u| u.contains("/ui/cases/LANTERN")).await;
    assert!(case.contains("/ui/cases/LANTERN?opened="), "{case}");
    assert!(b.text().await.contains("Ransomware against hospitals"));
    assert_eq!(ledger_size(&api).await, before + 2, "the case and the view of its page");
    b.axe(&axe, "case page").await;
    b.screenshot("case").await;

    // Draft a request from the case's page: the empty form refused beside its fields (nothing
    // written), then a production order to DE with one provision (the provision and the
    // button reached by keyboard). One entry for the draft, one for the view of its page.
    b.click("a[href='/ui/cases/LANTERN/requests/new']").await;
    wait_for_url(&b, |u| u.ends_with("/ui/cases/LANTERN/requests/new")).await;
    b.axe(&axe, "request form").await;
    b.screenshot("request-new").await;
    let before = ledger_size(&api).await;
    b.click("form[action='/ui/cases/LANTERN/requests'] button[type=submit]").await;
    wait_for(&b, "document.querySelector('#basis-error')").await;
    b.axe(&axe, "request form with errors").await;
    assert_eq!(ledger_size(&api).await, before, "a refused form writes nothing");
    b.type_into("#id", "L-EPOC-2").await;
    b.click("input[value='eu-2023-1543/production/DE']").await;
    b.tab_to("#provision-0").await;
    b.keys(" ").await;
    b.tab_to("form[action='/ui/cases/LANTERN/requests'] button[type=submit]").await;
    b.keys("\u{E007}").await;
    let drafted = wait_for_url(&b, |u| u.contains("drafted=")).await;
    assert!(drafted.contains("/ui/requests/L-EPOC-2?drafted="), "{drafted}");
    let page = b.text().await;
    assert!(page.contains("Request drafted") && page.contains("NL → DE"), "{page}");
    // A production order: the incoming check compares the provision ticked (Art 12(1)(d)).
    assert!(page.contains("Sr 138ab(1)") && page.contains("production"), "{page}");
    assert_eq!(ledger_size(&api).await, before + 2, "the draft and the view of its page");
    b.axe(&axe, "request page after its draft").await;

    // A tampered CSRF token: refused, nothing changed.
    b.goto(&format!("{api}/ui/cases/new")).await;
    b.type_into("#id", "FORGED").await;
    b.type_into("#title", "Sent with a forged token").await;
    b.script(
        "document.querySelector(\"form[action='/ui/cases'] input[name=csrf]\").value = 'forged'",
        json!([]),
    )
    .await;
    let before = ledger_size(&api).await;
    b.click("form[action='/ui/cases'] button[type=submit]").await;
    wait_for(&b, "location.pathname !== '/ui/cases/new'").await;
    let refused = b.text().await;
    assert!(refused.contains("Nothing was changed."), "{refused}");
    assert_eq!(ledger_size(&api).await, before, "a forged form writes nothing");
    b.axe(&axe, "CSRF refusal").await;

    // The search box finds the case by its id.
    b.goto(&format!("{api}/ui/")).await;
    b.type_into("#q", "LANTERN").await;
    b.keys("\u{E007}").await;
    let found = wait_for_url(&b, |u| u.contains("/ui/cases/LANTERN")).await;
    assert!(found.contains("/ui/cases/LANTERN"), "{found}");

    // The case listing, reached from the navigation: the case with its lead, one entry for
    // the page; its link leads to the case.
    b.goto(&format!("{api}/ui/")).await;
    let before = ledger_size(&api).await;
    b.click("nav a[href='/ui/cases']").await;
    wait_for_url(&b, |u| u.ends_with("/ui/cases")).await;
    let listing = b.text().await;
    assert!(listing.contains("Ransomware against hospitals"), "{listing}");
    assert!(listing.contains("NL (this party)"), "{listing}");
    assert!(listing.contains(&format!("recorded as ledger entry {before}")), "{listing}");
    assert_eq!(ledger_size(&api).await, before + 1, "one entry for the page");
    b.axe(&axe, "case listing").await;
    b.screenshot("cases").await;
    b.click("a[href='/ui/cases/LANTERN']").await;
    wait_for_url(&b, |u| u.ends_with("/ui/cases/LANTERN")).await;
    sign_out(&b).await;

    // A CSIRT analyst may not read the case: the page says the refusal was recorded and
    // shows nothing of the case.
    sign_in(&b, &api, &carl).await;
    b.axe(&axe, "CSIRT analyst's home").await;
    b.screenshot("home-csirt").await;
    let before = ledger_size(&api).await;
    b.goto(&format!("{api}/ui/cases/LANTERN")).await;
    let denied = b.text().await;
    assert!(!denied.contains("Ransomware"), "{denied}");
    assert!(denied.contains("recorded the refusal as ledger entry"), "{denied}");
    assert_eq!(ledger_size(&api).await, before + 1, "the refusal is one entry");
    b.axe(&axe, "refusal page").await;
    sign_out(&b).await;

    // A central authority's request: drafted over the API, then read and submitted through
    // its page (the incoming check's dual-criminality rule shown with its article).
    let r = server
        .post("/api/v1/cases", &pia, json!({"id": "L-CA", "title": "Preservation abroad"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let epoc = json!({"id": "L-EPOC-1", "case_id": "L-CA", "kind": "production",
        "agreement": "eu-2023-1543", "to": "DE", "provisions": ["Sr 138ab"]});
    let r = server.post("/api/v1/requests", &pia, epoc).await.unwrap();
    assert_eq!(r.status(), 201);
    sign_in(&b, &api, &pia).await;
    b.axe(&axe, "central authority's home").await;
    b.screenshot("home-central-authority").await;
    b.goto(&format!("{api}/ui/requests/L-EPOC-1")).await;
    let page = b.text().await;
    assert!(page.contains("12(1)(d)") && page.contains("Sr 138ab"), "{page}");
    b.axe(&axe, "request page").await;
    b.screenshot("request").await;
    let before = ledger_size(&api).await;
    b.click("#event-submit").await;
    b.click("form[action='/ui/requests/L-EPOC-1/events'] button[type=submit]").await;
    let done = wait_for_url(&b, |u| u.contains("done=")).await;
    assert!(done.contains("/ui/requests/L-EPOC-1?done="), "{done}");
    assert!(b.text().await.contains("Recorded at ledger entry"));
    assert_eq!(ledger_size(&api).await, before + 2, "the event and the view of the page");
    b.axe(&axe, "request page after an event").await;
    sign_out(&b).await;

    // The auditor's home shows the ledger's health.
    sign_in(&b, &api, &otto).await;
    b.axe(&axe, "auditor's home").await;
    b.screenshot("home-auditor").await;
    sign_out(&b).await;
    b.end().await;
}
