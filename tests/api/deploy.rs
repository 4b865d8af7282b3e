//! deploy/: the Prometheus alert rules and the Grafana dashboard name only metrics the gateway
//! really exports (scraped from a running gateway after traffic that makes every family
//! appear), the rules are well formed (and pass `promtool check rules` where promtool is
//! installed), and the dashboard shows every family the gateway exports.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};

use crate::helpers::{TestApp, A1};
use crate::on_both_backends;

const ALERTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus/alerts.yml");
const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/grafana/axe-gateway.json"
);

/// Families the gateway exports only once something has failed, which this test does not
/// provoke; each must still be declared among the names in src/telemetry/metrics.rs.
const ONLY_AFTER_A_FAILURE: &[&str] = &["axe_gauge_refresh_failures_total"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    groups: Vec<Group>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Group {
    name: String,
    rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    alert: String,
    expr: String,
    #[serde(rename = "for")]
    for_: Option<String>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

/// Every `axe_…` metric name in a PromQL expression.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("axe_").map(|p| p + i) {
        let starts_a_word =
            at == 0 || !(bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_');
        let end = expr[at..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(expr.len(), |n| at + n);
        if starts_a_word {
            names.insert(expr[at..end].to_owned());
        }
        i = end;
    }
    names
}

/// Every `expr` string anywhere in the dashboard.
fn dashboard_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", Value::String(e)) => out.push(e.clone()),
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

/// The families `/metrics` declares (`# TYPE name kind`), with their kinds.
fn exported_families(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| (name.to_owned(), kind.trim().to_owned()))
        .collect()
}

/// The family a sample name belongs to: a histogram's `_bucket`, `_sum` and `_count` are its own.
fn family_of<'a>(name: &'a str, families: &BTreeMap<String, String>) -> Option<&'a str> {
    if families.contains_key(name) {
        return Some(name);
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        name.strip_suffix(suffix)
            .filter(|f| families.get(*f).is_some_and(|k| k == "histogram"))
    })
}

/// The metric names declared in src/telemetry/metrics.rs (`pub const X: &str = "axe_…";`).
fn declared_names() -> BTreeSet<String> {
    let source = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/telemetry/metrics.rs"
    ))
    .expect("metrics.rs");
    source
        .lines()
        .filter(|l| l.starts_with("pub const ") && l.contains(": &str = \"axe_"))
        .filter_map(|l| l.split('"').nth(1))
        .map(str::to_owned)
        .collect()
}

/// Traffic that makes every family appear: API requests (2xx, 4xx), a create Huawei refuses,
/// a call whose events and CDR are pushed, a push with a bad signature, the refreshed gauges.
async fn scrape_after_traffic(app: &TestApp) -> String {
    app.pool_numbers().await;
    app.create(json!({"order_id": "deploy-1", "bind_num": A1}))
        .await;
    app.create_refused_by_huawei("deploy-2", "+8613800000002")
        .await;
    let (_, page) = app.get("/v1/bindings?limit=1").await;
    let b = &page["items"][0];
    let call = axe_gateway::sandbox::CallSpec::new(
        b["virtual_num"].as_str().unwrap(),
        b["extend_num"].as_str().unwrap(),
        "+8613900000001",
    );
    let played = app.sandbox.play_call(call).await.expect("played");
    assert!(played.all_delivered, "{played:?}");
    let (status, _) = app
        .push_raw(
            "/huawei/events",
            "{}",
            Some(("test-app-key", "not-the-secret")),
        )
        .await;
    assert_eq!(status, 401);
    // The refreshed gauges (every second here) and a job run.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = app.request("GET", "/metrics", None, None).await;
        let text = body.as_str().expect("text").to_owned();
        if text.contains("axe_pool_free_extensions{") && text.contains("axe_jobs_runs_total{") {
            return text;
        }
        assert!(Instant::now() < deadline, "gauges never appeared: {text}");
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
}

on_both_backends!(
    alert_rules_and_dashboard_name_only_exported_metrics_and_show_them_all
        with &[("METRICS_REFRESH_SECS", "1")],
);

async fn alert_rules_and_dashboard_name_only_exported_metrics_and_show_them_all(app: TestApp) {
    let text = scrape_after_traffic(&app).await;
    let families = exported_families(&text);
    let declared = declared_names();
    assert!(families.len() >= 25, "{text}");
    let known = |name: &str| {
        family_of(name, &families).is_some()
            || (ONLY_AFTER_A_FAILURE.contains(&name) && declared.contains(name))
    };

    // The rules: well formed, every alert named once, with a severity and a summary, and only
    // metrics the gateway exports.
    let rules: RuleFile = serde_norway::from_str(&std::fs::read_to_string(ALERTS).expect("alerts"))
        .expect("alerts.yml is a Prometheus rule file");
    let mut alerts = BTreeSet::new();
    let mut in_rules = BTreeSet::new();
    for group in &rules.groups {
        assert!(!group.rules.is_empty(), "group {} has no rules", group.name);
        for rule in &group.rules {
            assert!(alerts.insert(rule.alert.clone()), "{} twice", rule.alert);
            assert!(
                matches!(
                    rule.labels.get("severity").map(String::as_str),
                    Some("critical" | "warning")
                ),
                "{}: severity",
                rule.alert
            );
            assert!(rule.annotations.contains_key("summary"), "{}", rule.alert);
            if let Some(d) = &rule.for_ {
                assert!(
                    d.ends_with('m') || d.ends_with('s'),
                    "{}: for {d}",
                    rule.alert
                );
            }
            let names = metric_names(&rule.expr);
            assert!(!names.is_empty(), "{} names no axe_ metric", rule.alert);
            for name in names {
                assert!(known(&name), "{}: {name} is not exported", rule.alert);
                in_rules.insert(name);
            }
        }
    }
    // The alerts the operators asked for are there.
    for wanted in [
        "AxeHuaweiCircuitOpen",
        "AxeHuaweiErrorRate",
        "AxePendingBindingsTooOld",
        "AxePoolLowInArea",
        "AxeDbPoolExhausted",
        "AxeWebhookQueueDeep",
        "AxeWebhookSignatureFailures",
        "AxeApi5xxRate",
        "AxeJobFailures",
    ] {
        assert!(alerts.contains(wanted), "no {wanted} among {alerts:?}");
    }

    // The dashboard: valid JSON, only exported metrics, and every exported family shown.
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(DASHBOARD).expect("dashboard"))
            .expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    dashboard_exprs(&dashboard["panels"], &mut exprs);
    let mut shown = BTreeSet::new();
    for expr in &exprs {
        for name in metric_names(expr) {
            assert!(known(&name), "dashboard: {name} is not exported ({expr})");
            shown.insert(family_of(&name, &families).unwrap_or(&name).to_owned());
        }
    }
    let unshown: Vec<&String> = families
        .keys()
        .filter(|f| f.starts_with("axe_") && !shown.contains(*f))
        .collect();
    assert!(unshown.is_empty(), "families no panel shows: {unshown:?}");

    // promtool, when installed, checks the rules' PromQL too.
    match std::process::Command::new("promtool")
        .args(["check", "rules", ALERTS])
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "promtool check rules: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!(
            "promtool check rules SKIPPED: promtool cannot run ({e}); install Debian's \
             `prometheus` package to check the rules' PromQL too"
        ),
    }
}

#[test]
fn metric_names_are_found_whole_in_expressions() {
    assert_eq!(
        metric_names(
            r#"sum(rate(axe_http_requests_total{status=~"5.."}[5m])) / max_axe_x + axe_a"#
        ),
        ["axe_a", "axe_http_requests_total"]
            .into_iter()
            .map(str::to_owned)
            .collect()
    );
}
