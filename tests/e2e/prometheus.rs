//! A real Prometheus server (Debian's `prometheus` package, installed by
//! `scripts/setup-test-deps.sh`) scrapes the real scaler and loopback workers; every PromQL
//! expression of the Grafana dashboard must parse and return data through Prometheus' HTTP API,
//! `promtool check metrics` must be clean on the scaler's `/metrics`, and the README must list
//! every metric family the scaler exports.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::{Mode, Scaler, VLLM, Worker, add_observations, fixture, so_ref, temp_dir};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tool(name: &str) -> PathBuf {
    for dir in std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/bin")])
    {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "`{name}` not found: run scripts/setup-test-deps.sh (installs Debian's prometheus package)"
    );
}

/// Kills the child on drop, so a failed assertion does not leave Prometheus running.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind probe");
    l.local_addr().expect("addr").port()
}

/// Every PromQL expression in the dashboard, with Grafana's variables substituted the way
/// Grafana would for "All" selections.
fn dashboard_queries(path: &Path) -> Vec<(String, String)> {
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard"))
        .expect("dashboard is JSON");
    let mut out = Vec::new();
    let mut ids = std::collections::BTreeSet::new();
    for p in dash["panels"].as_array().expect("panels") {
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "duplicate panel id"
        );
        assert!(p["gridPos"]["w"].as_u64().is_some_and(|w| w > 0 && w <= 24));
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "panel {} datasource",
            p["title"]
        );
        for t in p["targets"].as_array().expect("targets") {
            let expr = t["expr"].as_str().expect("expr");
            let q = expr
                .replace("$__rate_interval", "15s")
                .replace("$namespace", ".*")
                .replace("$scaledobject", ".*");
            out.push((p["title"].as_str().unwrap_or("").to_string(), q));
        }
    }
    let vars: Vec<&str> = dash["templating"]["list"]
        .as_array()
        .expect("templating")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(vars, ["datasource", "namespace", "scaledobject"]);
    out
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn query(client: &reqwest::Client, prom: &str, q: &str) -> Result<usize, String> {
    let resp = client
        .get(format!("{prom}/api/v1/query?query={}", url_encode(q)))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body: Value = serde_json::from_str(&resp.text().await.map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    if body["status"] != "success" {
        return Err(format!("{}: {}", body["errorType"], body["error"]));
    }
    Ok(body["data"]["result"].as_array().map(Vec::len).unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_queries_return_data_from_a_real_prometheus() {
    let prometheus = tool("prometheus");
    let promtool = tool("promtool");

    // Two vLLM workers whose TTFT histograms keep growing, and one that serves garbage.
    let page = fixture(VLLM);
    let (workers, _) = Worker::fleet(2, &page).await;
    let garbage = Worker::start(Mode::Page("this is { not metrics\n".to_string())).await;
    let targets: Vec<String> = workers
        .iter()
        .chain([&garbage])
        .map(Worker::target)
        .collect();
    let scaler = Scaler::start().await;
    let so = so_ref(
        "dash",
        &[
            ("targets", &targets.join(",")),
            ("scrapeIntervalSeconds", "0.5"),
            ("ttftMinSamples", "5"),
        ],
    );
    let mut client = scaler.client().await;
    let load = {
        let so = so.clone();
        let mut pages = vec![page.clone(); workers.len()];
        let stop = scaler.shutdown.clone();
        let setters: Vec<_> = workers.iter().map(|w| w.setter()).collect();
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                for (p, set) in pages.iter_mut().zip(&setters) {
                    *p = add_observations(
                        p,
                        "vllm:time_to_first_token_seconds",
                        &[(0.1, 3.0), (0.5, 2.0)],
                    );
                    set(Mode::Page(p.clone()));
                }
                let _ = client
                    .get_metrics(crate::common::metrics_req(&so, "llm-desired-replicas"))
                    .await;
                let _ = client.is_active(so.clone()).await;
                let _ = client.get_metric_spec(so.clone()).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };

    let dir = temp_dir("prometheus");
    let port = free_port();
    let scrape = |job: &str, t: Vec<String>| {
        format!(
            "  - job_name: {job}\n    static_configs:\n      - targets: [{}]\n",
            t.iter()
                .map(|x| format!("'{x}'"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{}{}",
        scrape("keda-llm-scaler", vec![scaler.http.to_string()]),
        scrape(
            "workers",
            workers.iter().map(|w| w.addr.to_string()).collect()
        ),
    );
    std::fs::write(dir.join("prometheus.yml"), config).expect("write config");
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("log file");
    let _prom = Reaper(
        Command::new(&prometheus)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus"),
    );
    let prom = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();

    let queries = dashboard_queries(&repo().join("dashboards/keda-llm-scaler.json"));
    assert!(
        queries.len() >= 20,
        "dashboard has {} queries",
        queries.len()
    );
    let watch = keda_llm_scaler::clock::Stopwatch::start();
    let mut missing: Vec<String> = Vec::new();
    while watch.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        missing.clear();
        for (title, q) in &queries {
            match query(&http, &prom, q).await {
                Ok(n) if n > 0 => {}
                Ok(_) => missing.push(format!("{title}: no data: {q}")),
                Err(e) if e.contains("bad_data") => panic!("{title}: PromQL rejected: {q}: {e}"),
                Err(e) => missing.push(format!("{title}: {e}: {q}")),
            }
        }
        if missing.is_empty() {
            break;
        }
    }
    let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
    assert!(
        missing.is_empty(),
        "after 60 s:\n  {}\nprometheus log:\n{log}",
        missing.join("\n  ")
    );

    // Template variable queries, as Grafana runs them.
    for label in ["namespace", "scaledobject"] {
        let body: Value = http
            .get(format!(
                "{prom}/api/v1/label/{label}/values?match[]=keda_llm_scaler_desired_replicas"
            ))
            .send()
            .await
            .expect("label values")
            .text()
            .await
            .map(|t| serde_json::from_str(&t).expect("JSON"))
            .expect("body");
        let values = body["data"].as_array().cloned().unwrap_or_default();
        assert!(!values.is_empty(), "no values for ${label}");
    }

    // Prometheus' own view of the scrape: the scaler target is up.
    let up = query(&http, &prom, "up{job=\"keda-llm-scaler\"} == 1")
        .await
        .expect("up");
    assert_eq!(up, 1, "scaler target up");

    // promtool's lint on what the scaler exposes.
    let metrics = scaler.http_get("/metrics").await;
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(metrics.as_bytes())
            .expect("pipe metrics");
    }
    let out = child.wait_with_output().expect("promtool output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.trim().is_empty(),
        "promtool check metrics:\n{text}"
    );

    // The README lists every family.
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README");
    for line in metrics.lines().filter(|l| l.starts_with("# TYPE ")) {
        let family = line.split_whitespace().nth(2).expect("family name");
        assert!(
            readme.contains(&format!("`{family}")),
            "README does not list {family}"
        );
    }

    scaler.shutdown.cancel();
    let _ = load.await;
    let _ = std::fs::remove_dir_all(dir);
}
