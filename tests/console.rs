//! The merchandisers' console in a real browser: headless Chromium driven through
//! WebDriver (Debian's `chromium` and `chromium-driver`) against the real server on a random
//! port. Signs in, sets an allocation through the form and reads it back through the API,
//! gets the inline 409 of an over-allocation, creates a sale (entered in New York time,
//! stored in UTC), uploads a feed with a bad line, and watches holds placed through the API
//! show in the live view within a second. A screenshot of each screen is written to
//! `target/console-screenshots/`. The same flows run in Firefox (firefox-esr over
//! Marionette, `tests/firefox/`). Without a browser a test says so and is skipped;
//! `.ci/run` sets `HOLDFAST_REQUIRE_BROWSER=1`, under which a missing browser fails it.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{TestServer, ADMIN_KEY};
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Chromedriver on a free port, stopped when dropped.
struct Driver {
    _child: common::Helper,
    url: String,
    /// The browser's profile: its processes are found by it when the driver goes.
    profile: tempfile::TempDir,
}

/// ChromeDriver does not take its browser with it when it is killed (a test that fails
/// never closes its session): the browser's processes are the ones started with this
/// driver's own profile directory.
impl Drop for Driver {
    fn drop(&mut self) {
        let pattern = format!("--user-data-dir={}", self.profile.path().display());
        let _ = std::process::Command::new("pkill")
            .args(["-KILL", "-f", "--", &pattern])
            .status();
    }
}

async fn start_driver() -> Driver {
    let port = common::free_port();
    let driver = Driver {
        _child: common::Helper(
            std::process::Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                // The browser's time zone: the sale form must store what is typed in UTC.
                .env("TZ", "America/New_York")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("chromedriver starts"),
        ),
        url: format!("http://127.0.0.1:{port}"),
        profile: tempfile::tempdir().expect("a profile dir"),
    };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return driver;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not listen on {port}");
}

async fn browser(driver: &Driver) -> Client {
    let profile = driver.profile.path();
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,800",
                format!("--user-data-dir={}", profile.display())],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a browser session starts")
}

fn shots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("a screenshot");
    std::fs::write(shots_dir().join(format!("{name}.png")), png).unwrap();
}

async fn by_id(client: &Client, id: &str) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::Id(id))
        .await
        .unwrap_or_else(|err| panic!("#{id}: {err}"))
}

async fn type_into(client: &Client, id: &str, text: &str) {
    let input = by_id(client, id).await;
    input.clear().await.unwrap();
    input.send_keys(text).await.unwrap();
}

async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|err| panic!("{css}: {err}"))
        .click()
        .await
        .unwrap();
}

async fn text(client: &Client, id: &str) -> String {
    by_id(client, id).await.text().await.unwrap()
}

/// Waits up to `within` for `id`'s text to satisfy `ok`; the text it ended with.
async fn text_until(
    client: &Client,
    id: &str,
    within: Duration,
    ok: impl Fn(&str) -> bool,
) -> String {
    let started = Instant::now();
    loop {
        let now = text(client, id).await;
        if ok(&now) || started.elapsed() > within {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Sets the last allocation row to `amount` in `mode` (units or percent).
async fn set_last_row(client: &Client, mode: &str, amount: &str) {
    let row = "#alloc-rows tbody tr:last-child";
    let mode_css = format!("{row} .alloc-mode");
    let select = client.find(Locator::Css(&mode_css)).await.unwrap();
    select.select_by_value(mode).await.unwrap();
    let amount_css = format!("{row} .alloc-amount");
    let input = client.find(Locator::Css(&amount_css)).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(amount).await.unwrap();
}

async fn script(client: &Client, code: &str) -> Value {
    client.execute(code, vec![]).await.expect("the script runs")
}

async fn api(
    server: &TestServer,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> common::Answer {
    let body = body.map(|b| b.to_string());
    server.send(method, path, body.as_deref(), &[]).await
}

fn browser_missing() -> bool {
    let missing = !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists();
    if missing {
        assert!(
            std::env::var("HOLDFAST_REQUIRE_BROWSER").is_err(),
            "HOLDFAST_REQUIRE_BROWSER is set but {CHROMIUM} or {CHROMEDRIVER} is missing"
        );
        eprintln!("SKIPPED: the console browser test needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)");
    }
    missing
}

/// The files are served with a strict Content-Security-Policy and no key is needed to load
/// them (the key is typed into the page); no inline script or style anywhere.
#[actix_web::test]
async fn the_console_is_served_from_the_binary_under_a_strict_policy() {
    let server = common::spawn_with_keys().await;
    for (path, kind) in [
        ("/console", "text/html"),
        ("/console/console.js", "text/javascript"),
        ("/console/console.css", "text/css"),
    ] {
        let response = server.client.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers().clone();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe"),
            "{csp}"
        );
        assert!(headers["content-type"].to_str().unwrap().starts_with(kind));
        let body = response.text().await.unwrap();
        if kind == "text/html" {
            assert!(
                !body.contains("<script>") && !body.contains(" style="),
                "inline code in {path}"
            );
            assert!(
                !body.contains("http://") && !body.contains("https://"),
                "a remote asset in {path}"
            );
        }
    }
}

#[actix_web::test]
async fn a_merchandiser_runs_a_sale_from_the_console() {
    if browser_missing() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = common::spawn_with_keys().await;
    server.put_sku("TEE", 100, 0).await;
    server.put_sku("CAP", 40, 2).await;
    let driver = start_driver().await;
    let client = browser(&driver).await;
    client.goto(&server.url("/console")).await.unwrap();

    // Sign in: a wrong key is refused, the right one opens the SKU list.
    type_into(&client, "key", "not-the-key").await;
    click(&client, "#signin-form button").await;
    let refused = text_until(&client, "signin-error", Duration::from_secs(3), |t| {
        !t.is_empty()
    })
    .await;
    assert!(refused.contains("not accepted"), "{refused}");
    shot(&client, "01-signin").await;
    type_into(&client, "key", ADMIN_KEY).await;
    click(&client, "#signin-form button").await;
    let table = text_until(&client, "sku-table", Duration::from_secs(3), |t| {
        t.contains("TEE")
    })
    .await;
    assert!(table.contains("CAP"), "{table}");
    let stored = script(
        &client,
        "return sessionStorage.getItem('holdfast.admin-key');",
    )
    .await;
    assert_eq!(stored, json!(ADMIN_KEY));
    shot(&client, "02-skus").await;

    // Allocation: 50% to web through the form shows 50 units before saving, then is read
    // back through the API.
    click(&client, "nav button[data-screen=allocation]").await;
    type_into(&client, "alloc-sku", "TEE").await;
    click(&client, "#alloc-load button").await;
    text_until(&client, "alloc-summary", Duration::from_secs(3), |t| {
        t.contains("sellable")
    })
    .await;
    click(&client, "#alloc-add").await;
    let row = "#alloc-rows tbody tr:last-child";
    client
        .find(Locator::Css(&format!("{row} .alloc-channel")))
        .await
        .unwrap()
        .send_keys("web")
        .await
        .unwrap();
    set_last_row(&client, "percent", "50").await;
    let result = client
        .find(Locator::Css(&format!("{row} .alloc-result")))
        .await
        .unwrap();
    assert_eq!(result.text().await.unwrap(), "50");
    assert_eq!(text(&client, "alloc-pool").await, "50");
    click(&client, "#alloc-save").await;
    text_until(&client, "alloc-summary", Duration::from_secs(3), |t| {
        t.contains("Saved")
    })
    .await;
    let view = server.sku("TEE").await;
    assert_eq!(view["channels"]["web"]["allocated"], 50, "{view}");
    shot(&client, "03-allocation").await;

    // Over-allocation: the server's 409, with its numbers, inline.
    set_last_row(&client, "units", "500").await;
    click(&client, "#alloc-save").await;
    let error = text_until(&client, "alloc-error", Duration::from_secs(3), |t| {
        !t.is_empty()
    })
    .await;
    assert!(
        error.contains("500") && error.contains("100 sellable"),
        "{error}"
    );
    assert_eq!(server.sku("TEE").await["channels"]["web"]["allocated"], 50);
    shot(&client, "04-allocation-409").await;
    // A rebalance preview moves nothing until applied.
    click(&client, "#rebalance-release_unsold").await;
    let preview = text_until(&client, "rebalance-preview", Duration::from_secs(3), |t| {
        t.contains("web")
    })
    .await;
    assert!(preview.contains("50"), "{preview}");
    assert_eq!(server.sku("TEE").await["channels"]["web"]["allocated"], 50);

    // A sale typed in New York time is stored in UTC.
    click(&client, "nav button[data-screen=sales]").await;
    type_into(&client, "sale-id", "bf").await;
    type_into(&client, "sale-name", "Black Friday").await;
    script(
        &client,
        "document.getElementById('sale-starts').value = '2030-11-29T08:00';",
    )
    .await;
    script(
        &client,
        "document.getElementById('sale-ends').value = '2030-11-29T20:00';",
    )
    .await;
    type_into(&client, "sale-skus", "CAP").await;
    type_into(&client, "sale-limit", "2").await;
    click(&client, "#sale-form button[type=submit]").await;
    let saved = text_until(&client, "sale-message", Duration::from_secs(3), |t| {
        !t.is_empty()
    })
    .await;
    assert!(saved.contains("saved"), "{saved}");
    let sale = api(&server, Method::GET, "/v1/sales/bf", None).await.body;
    assert_eq!(sale["starts_at"], "2030-11-29T13:00:00Z", "{sale}");
    assert_eq!(sale["ends_at"], "2030-11-30T01:00:00Z");
    assert_eq!(sale["per_customer_limit"], 2);
    text_until(&client, "sales-table", Duration::from_secs(3), |t| {
        t.contains("Black Friday")
    })
    .await;
    shot(&client, "05-sales").await;

    // A feed with a bad line: the good one applies, the bad one is reported by number.
    click(&client, "nav button[data-screen=feeds]").await;
    let feed = dir.path().join("stock.csv");
    std::fs::write(&feed, "sku,on_hand\nTEE,120\nbad sku,3\n").unwrap();
    by_id(&client, "feed-file")
        .await
        .send_keys(feed.to_str().unwrap())
        .await
        .unwrap();
    click(&client, "#feed-form button").await;
    let result = text_until(&client, "feed-result", Duration::from_secs(3), |t| {
        !t.is_empty()
    })
    .await;
    assert!(
        result.contains("Applied 1") && result.contains("1 bad"),
        "{result}"
    );
    assert!(text(&client, "feed-errors").await.contains("Line 3"));
    assert_eq!(server.sku("TEE").await["on_hand"], 120);
    shot(&client, "06-feeds").await;

    // Live: holds placed through the API show within a second. TEE is on a sale with its
    // own admission queue, open now: the live view shows that queue.
    let now = holdfast::clock::rfc3339(holdfast::clock::Clock::system().now_ms() - 60_000);
    let drop_sale = json!({"name": "Drop", "starts_at": now, "ends_at": "2031-01-01T00:00:00Z",
        "skus": ["TEE"], "admission": {"in_flight_max": 8, "queue_max": 40, "wait_max_ms": 2000, "rate_per_s": 0}});
    let put = api(&server, Method::PUT, "/v1/sales/drop", Some(drop_sale)).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    click(&client, "nav button[data-screen=live]").await;
    type_into(&client, "live-skus", "TEE").await;
    click(&client, "#live-form button").await;
    text_until(&client, "live-status", Duration::from_secs(5), |t| {
        t.contains("following")
    })
    .await;
    let available = "#live-table tbody tr[data-channel=''] .live-available";
    let read = format!("return document.querySelector(\"{available}\")?.textContent ?? '';");
    assert_eq!(script(&client, &read).await, json!("120"));
    for n in 0..3 {
        let held = server.hold(&format!("live-{n}"), &[("TEE", 2)]).await;
        assert_eq!(held.status, StatusCode::CREATED);
    }
    let acknowledged = Instant::now();
    loop {
        // Read in one step: the table is drawn again on every event, so an element found
        // first and read after may already be gone.
        let now = script(&client, &read).await;
        let now = now.as_str().unwrap_or_default();
        if now == "114" {
            break;
        }
        assert!(
            acknowledged.elapsed() < Duration::from_secs(1),
            "the live view still says {now} a second after the holds"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let queue = text_until(&client, "adm-queue", Duration::from_secs(3), |t| {
        t.contains("drop")
    })
    .await;
    assert_eq!(queue, "sale drop");
    assert!(text(&client, "adm-queued").await.ends_with("of 40"));
    text_until(&client, "adm-queued", Duration::from_secs(3), |t| {
        t.contains(" of ")
    })
    .await;
    shot(&client, "07-live").await;

    // Every field is labelled, and the page fits a tablet without sideways scrolling.
    let unlabelled = script(
        &client,
        "return [...document.querySelectorAll('input, select')]
           .filter(e => e.labels.length === 0 && !e.getAttribute('aria-label')).map(e => e.id);",
    )
    .await;
    assert_eq!(unlabelled, json!([]));
    client.set_window_size(820, 1180).await.unwrap();
    let overflow = script(
        &client,
        "return document.documentElement.scrollWidth - window.innerWidth;",
    )
    .await;
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "{overflow} px wider than a tablet"
    );
    shot(&client, "08-live-tablet").await;
    // The key was never part of a URL the page asked for.
    let urls = script(
        &client,
        "return performance.getEntries().map(e => e.name).join(' ');",
    )
    .await;
    assert!(!urls.as_str().unwrap().contains(ADMIN_KEY), "{urls}");
    client.close().await.unwrap();
}

/// What the console reads that curl can read too: SKUs a page at a time by prefix, every
/// sale, a rebalance previewed without moving anything, and the queue's 429 count.
#[actix_web::test]
async fn the_api_the_console_reads_pages_lists_and_previews() {
    let server = common::spawn_with_keys().await;
    for n in 0..5 {
        server.put_sku(&format!("P-{n}"), 10, 0).await;
    }
    server.put_sku("Q-0", 10, 0).await;
    let page = api(&server, Method::GET, "/v1/skus?prefix=P-&limit=2", None)
        .await
        .body;
    let ids = |page: &Value| -> Vec<String> {
        page["skus"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["sku"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&page), ["P-0", "P-1"]);
    assert_eq!(page["next"], "P-1");
    let last = api(
        &server,
        Method::GET,
        "/v1/skus?prefix=P-&limit=2&after=P-3",
        None,
    )
    .await
    .body;
    assert_eq!(ids(&last), ["P-4"]);
    assert!(last.get("next").is_none(), "{last}");
    let too_many = api(&server, Method::GET, "/v1/skus?limit=101", None).await;
    assert_eq!(too_many.status, StatusCode::BAD_REQUEST);

    let sale = json!({"name": "s", "starts_at": "2030-01-01T00:00:00Z", "ends_at": "2030-01-02T00:00:00Z", "skus": ["Q-0"]});
    assert_eq!(
        api(&server, Method::PUT, "/v1/sales/s1", Some(sale))
            .await
            .status,
        StatusCode::OK
    );
    let sales = api(&server, Method::GET, "/v1/sales", None).await.body;
    assert_eq!(sales[0]["sale_id"], "s1", "{sales}");

    let quota = json!({"channels": {"web": {"units": 6}}});
    api(&server, Method::PUT, "/v1/skus/Q-0/allocation", Some(quota)).await;
    let preview = api(
        &server,
        Method::POST,
        "/v1/skus/Q-0/allocation/rebalance",
        Some(json!({"policy": "release_unsold", "dry_run": true})),
    )
    .await;
    assert_eq!(
        preview.body["channels"]["web"]["allocated"], 0,
        "{}",
        preview.body
    );
    assert_eq!(
        server.sku("Q-0").await["channels"]["web"]["allocated"],
        6,
        "a preview moves nothing"
    );

    let queue = api(&server, Method::GET, "/v1/admission", None).await.body;
    assert_eq!(queue["refused_total"], 0, "{queue}");
    assert!(
        sales[0].get("queue").is_none(),
        "no queue of its own: {sales}"
    );
    let own = json!({"name": "q", "starts_at": "2030-01-01T00:00:00Z", "ends_at": "2030-01-02T00:00:00Z",
        "skus": ["P-0"], "admission": {"in_flight_max": 3, "queue_max": 7, "wait_max_ms": 100, "rate_per_s": 0}});
    assert_eq!(
        api(&server, Method::PUT, "/v1/sales/s2", Some(own))
            .await
            .status,
        StatusCode::OK
    );
    let sale = api(&server, Method::GET, "/v1/sales/s2", None).await.body;
    assert_eq!(sale["queue"]["queue_max"], 7, "{sale}");
    assert!(queue["estimated_wait_ms"].is_u64());
}

const FIREFOX: &str = "/usr/bin/firefox-esr";

/// The virtualenv `.ci/run` makes with `tests/firefox/requirements.txt`.
fn firefox_python() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/firefox-venv/bin/python")
}

/// The same console in Firefox (Debian's firefox-esr over Marionette; the flows are in
/// `tests/firefox/console_in_firefox.py`): sign in, the SKU list, the inline 409, a sale
/// stored in UTC, the live view within a second. The server runs as a process of its
/// own, so the script may block while it drives the browser.
#[actix_web::test]
async fn the_console_works_in_firefox() {
    let missing = !Path::new(FIREFOX).exists() || !firefox_python().exists();
    if missing {
        assert!(
            std::env::var("HOLDFAST_REQUIRE_BROWSER").is_err(),
            "HOLDFAST_REQUIRE_BROWSER is set but {FIREFOX} or {} is missing",
            firefox_python().display()
        );
        eprintln!(
            "SKIPPED: the Firefox console test needs {FIREFOX} and a venv at {} (see .ci/run)",
            firefox_python().display()
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_process, server) = common::Process::start_server(dir.path(), &["--admin-key", ADMIN_KEY]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/firefox/console_in_firefox.py");
    let output = std::process::Command::new(firefox_python())
        .arg(script)
        .arg(&server.base)
        .arg(ADMIN_KEY)
        .arg(shots_dir())
        .output()
        .expect("the Firefox script runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{said}");
    assert!(said.contains("every check passed"), "{said}");
}
