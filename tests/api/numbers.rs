//! The virtual-number pool and allocation limits.

use serde_json::{json, Value};

use crate::helpers::{TestApp, A1, TOKEN, X1, X2};
use crate::on_both_backends;

on_both_backends!(
    numbers_are_added_listed_and_removed,
    a_batch_of_1000_numbers_is_added_in_request_order,
    a_batch_with_a_bad_item_adds_nothing_and_names_it,
    a_batch_with_a_pooled_number_is_a_conflict_and_adds_nothing,
    numbers_repeated_in_a_batch_are_refused,
    empty_and_oversized_batches_are_refused,
    a_batch_number_takes_bindings,
    a_full_pool_answers_no_capacity with &[("MAX_BINDINGS_PER_NUMBER", "2")],
    released_extensions_are_quarantined_on_their_number with &[("HUAWEI_EXTENSION_DIGITS", "1"), ("MAX_BINDINGS_PER_NUMBER", "9")],
    allocation_prefers_the_number_with_most_free_extensions,
);

async fn numbers_are_added_listed_and_removed(app: TestApp) {
    let (status, n) = app
        .post("/v1/numbers", &json!({"number": X1, "area_code": "0755"}))
        .await;
    assert_eq!(status, 201, "{n}");
    assert_eq!(n["status"], "normal");
    assert_eq!(n["free_extensions"], 200);
    let (status, p) = app
        .post("/v1/numbers", &json!({"number": X1, "area_code": "0755"}))
        .await;
    assert_eq!(status, 409, "duplicate: {p}");
    let (status, p) = app
        .post("/v1/numbers", &json!({"number": "12345", "area_code": "x"}))
        .await;
    assert_eq!(status, 400, "{p}");
    assert_eq!(
        p["errors"].as_array().unwrap().len(),
        2,
        "both fields named: {p}"
    );

    let b = app.create(json!({"order_id": "n-1", "bind_num": A1})).await;
    let (_, list) = app.get("/v1/numbers").await;
    assert_eq!(list["items"][0]["live_bindings"], 1);
    assert_eq!(list["items"][0]["free_extensions"], 199);

    let (status, p) = app.delete("/v1/numbers/%2B8617000000001").await;
    assert_eq!(status, 409, "refused while it has live bindings: {p}");
    app.delete(&format!("/v1/bindings/{}", b["id"].as_str().unwrap()))
        .await;
    let (_, list) = app.get("/v1/numbers").await;
    assert_eq!(list["items"][0]["live_bindings"], 0);
    assert_eq!(list["items"][0]["quarantined_extensions"], 1);
    let (status, _) = app.delete("/v1/numbers/%2B8617000000001").await;
    assert_eq!(status, 204);
    let (status, _) = app.delete("/v1/numbers/%2B8617000000001").await;
    assert_eq!(status, 404);
    let (_, list) = app.get("/v1/numbers").await;
    assert!(list["items"].as_array().unwrap().is_empty());
}

async fn a_full_pool_answers_no_capacity(app: TestApp) {
    app.pool_numbers().await;
    for i in 0..4 {
        app.create(json!({"order_id": format!("cap-{i}"), "bind_num": A1}))
            .await;
    }
    let (status, p) = app
        .post(
            "/v1/bindings",
            &json!({"order_id": "cap-5", "bind_num": A1}),
        )
        .await;
    assert_eq!(status, 409, "{p}");
    assert_eq!(p["code"], "no_capacity");
    let (status, p) = app
        .post(
            "/v1/bindings",
            &json!({"order_id": "cap-6", "bind_num": A1, "virtual_num": X1}),
        )
        .await;
    assert_eq!(status, 409, "{p}");
    assert_eq!(p["code"], "no_capacity");
    assert_eq!(app.sandbox.stats().bind_requests, 4);
}

async fn released_extensions_are_quarantined_on_their_number(app: TestApp) {
    app.pool_numbers().await;
    let first = app
        .create(json!({"order_id": "q-0", "bind_num": A1, "virtual_num": X1}))
        .await;
    let released_e = first["extend_num"].as_str().unwrap().to_owned();
    app.delete(&format!("/v1/bindings/{}", first["id"].as_str().unwrap()))
        .await;
    // Eight more fit on X1 (nine one-digit extensions, one in quarantine) and none reuses it.
    for i in 1..=8 {
        let b = app
            .create(json!({"order_id": format!("q-{i}"), "bind_num": A1, "virtual_num": X1}))
            .await;
        assert_ne!(
            b["extend_num"].as_str().unwrap(),
            released_e,
            "quarantined extension reused"
        );
    }
    let (status, p) = app
        .post(
            "/v1/bindings",
            &json!({"order_id": "q-9", "bind_num": A1, "virtual_num": X1}),
        )
        .await;
    assert_eq!(status, 409, "{p}");
    assert_eq!(p["code"], "no_capacity");
    let (status, p) = app
        .post("/v1/bindings", &json!({"order_id": "q-10", "bind_num": A1, "virtual_num": X1, "extend_num": released_e}))
        .await;
    assert_eq!(status, 409, "asking for the quarantined extension: {p}");
}

async fn allocation_prefers_the_number_with_most_free_extensions(app: TestApp) {
    app.pool_numbers().await;
    app.create(json!({"order_id": "p-0", "bind_num": A1, "virtual_num": X1}))
        .await;
    let b = app.create(json!({"order_id": "p-1", "bind_num": A1})).await;
    assert_eq!(b["virtual_num"], X2, "X2 has more free extensions");
    let c = app
        .create(json!({"order_id": "p-2", "bind_num": A1, "area_code": "0755"}))
        .await;
    assert_eq!(c["number_choice"], "pool");
}

/// `{"numbers":[…]}` of `count` numbers `+86171xxxxxxxx`, starting at `from`, in descending
/// order (not the list's order), alternating between two areas.
fn batch(from: usize, count: usize) -> Value {
    let numbers: Vec<Value> = (from..from + count)
        .rev()
        .map(|i| {
            json!({
                "number": format!("+86171{i:08}"),
                "area_code": if i % 2 == 0 { "0755" } else { "021" },
            })
        })
        .collect();
    json!({ "numbers": numbers })
}

fn errors(problem: &Value) -> Vec<(String, String)> {
    problem["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {problem}"))
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap().to_owned(),
                e["detail"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn a_batch_of_1000_numbers_is_added_in_request_order(app: TestApp) {
    let body = batch(0, 1000);
    // Pretty-printed, as a person might send it: larger than the API's usual 64 KiB.
    let pretty = serde_json::to_string_pretty(&body).unwrap();
    assert!(pretty.len() > 64 * 1024, "{} bytes", pretty.len());
    let (status, added) = app
        .request("POST", "/v1/numbers:batch", Some(TOKEN), Some(&pretty))
        .await;
    assert_eq!(status, 201, "{added}");
    let items = added["items"].as_array().unwrap();
    assert_eq!(items.len(), 1000);
    for (item, sent) in items.iter().zip(body["numbers"].as_array().unwrap()) {
        assert_eq!(item["number"], sent["number"]);
        assert_eq!(item["area_code"], sent["area_code"]);
        assert_eq!(item["status"], "normal");
        assert_eq!(item["live_bindings"], 0);
        assert_eq!(item["free_extensions"], 200);
    }
    assert_eq!(app.count("virtual_numbers").await, 1000);
    let (_, list) = app.get("/v1/numbers").await;
    let listed = list["items"].as_array().unwrap();
    assert_eq!(listed.len(), 1000);
    assert_eq!(listed[0]["area_code"], "021");
    assert_eq!(listed[0]["number"], "+8617100000001");
    assert_eq!(listed[999]["area_code"], "0755");
    assert_eq!(listed[999]["number"], "+8617100000998");

    // The literal `:batch` route takes only POST, and `/v1/numbers/{number}` is unaffected.
    let (status, p) = app.get("/v1/numbers:batch").await;
    assert_eq!(status, 405, "{p}");
    assert_eq!(p["code"], "method_not_allowed");
    let (status, p) = app.post("/v1/numbers:other", &batch(0, 1)).await;
    assert_eq!(status, 404, "{p}");
    let (status, _) = app.delete("/v1/numbers/%2B8617100000998").await;
    assert_eq!(status, 204);
    assert_eq!(app.count("virtual_numbers").await, 999);
}

async fn a_batch_with_a_bad_item_adds_nothing_and_names_it(app: TestApp) {
    let mut body = batch(0, 10);
    body["numbers"][3]["number"] = json!("8617100000099");
    body["numbers"][7]["area_code"] = json!("755");
    let (status, p) = app.post("/v1/numbers:batch", &body).await;
    assert_eq!(status, 400, "{p}");
    assert_eq!(p["code"], "invalid_request");
    let errs = errors(&p);
    assert_eq!(errs.len(), 2, "{p}");
    assert_eq!(errs[0].0, "numbers[3].number");
    assert!(errs[0].1.contains("E.164"), "{p}");
    assert_eq!(errs[1].0, "numbers[7].area_code");
    assert!(p["detail"]
        .as_str()
        .unwrap()
        .starts_with("numbers[3].number: "));
    assert_eq!(app.count("virtual_numbers").await, 0);

    // A wrong type or a missing field inside an item is named by its path too.
    let (status, p) = app
        .post(
            "/v1/numbers:batch",
            &json!({"numbers": [{"number": X1, "area_code": "0755"}, {"number": X2}]}),
        )
        .await;
    assert_eq!(status, 400, "{p}");
    assert_eq!(errors(&p)[0].0, "numbers[1]", "{p}");
    assert!(errors(&p)[0].1.contains("area_code"), "{p}");
    assert_eq!(app.count("virtual_numbers").await, 0);
}

async fn a_batch_with_a_pooled_number_is_a_conflict_and_adds_nothing(app: TestApp) {
    let body = batch(0, 5);
    let pooled = body["numbers"][2].clone();
    let (status, p) = app.post("/v1/numbers", &pooled).await;
    assert_eq!(status, 201, "{p}");
    let (status, p) = app.post("/v1/numbers:batch", &body).await;
    assert_eq!(status, 409, "{p}");
    assert_eq!(p["code"], "conflict");
    assert_eq!(
        errors(&p),
        vec![(
            "numbers[2].number".to_owned(),
            "is already in the pool".to_owned()
        )]
    );
    assert_eq!(app.count("virtual_numbers").await, 1, "only the single add");
}

async fn numbers_repeated_in_a_batch_are_refused(app: TestApp) {
    let mut body = batch(0, 6);
    body["numbers"][4]["number"] = body["numbers"][1]["number"].clone();
    // Another area does not make it another number.
    body["numbers"][5] = json!({"number": body["numbers"][1]["number"], "area_code": "010"});
    let (status, p) = app.post("/v1/numbers:batch", &body).await;
    assert_eq!(status, 400, "{p}");
    assert_eq!(p["code"], "invalid_request");
    assert_eq!(
        errors(&p),
        vec![
            (
                "numbers[4].number".to_owned(),
                "repeats numbers[1].number".to_owned()
            ),
            (
                "numbers[5].number".to_owned(),
                "repeats numbers[1].number".to_owned()
            ),
        ]
    );
    assert_eq!(app.count("virtual_numbers").await, 0);
}

async fn empty_and_oversized_batches_are_refused(app: TestApp) {
    for (body, holds) in [(batch(0, 1001), "1001"), (json!({"numbers": []}), "0")] {
        let (status, p) = app.post("/v1/numbers:batch", &body).await;
        assert_eq!(status, 400, "{p}");
        let errs = errors(&p);
        assert_eq!(errs.len(), 1, "{p}");
        assert_eq!(errs[0].0, "numbers");
        assert!(errs[0].1.contains("1 to 1000"), "{p}");
        assert!(errs[0].1.ends_with(holds), "{p}");
    }
    let (status, p) = app.post("/v1/numbers:batch", &json!({})).await;
    assert_eq!(status, 400, "{p}");
    assert_eq!(errors(&p)[0].0, "numbers");
    assert_eq!(app.count("virtual_numbers").await, 0);
}

async fn a_batch_number_takes_bindings(app: TestApp) {
    let (status, p) = app
        .post(
            "/v1/numbers:batch",
            &json!({"numbers": [
                {"number": X1, "area_code": "0755"},
                {"number": "+8617100000007", "area_code": "021"},
            ]}),
        )
        .await;
    assert_eq!(status, 201, "{p}");
    app.sandbox.add_number("+8617100000007", "021");
    let b = app
        .create(json!({"order_id": "batch-1", "bind_num": A1, "area_code": "021"}))
        .await;
    assert_eq!(b["virtual_num"], "+8617100000007");
    assert_eq!(b["number_choice"], "pool");
    assert_eq!(b["status"], "active");
    let b = app
        .create(json!({"order_id": "batch-2", "bind_num": A1, "virtual_num": X1}))
        .await;
    assert_eq!(b["status"], "active");
    let (_, list) = app.get("/v1/numbers").await;
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["live_bindings"] == 1),
        "{list}"
    );

    // Released, removed and added again: its quarantined extension still counts.
    app.delete(&format!("/v1/bindings/{}", b["id"].as_str().unwrap()))
        .await;
    let (status, _) = app.delete("/v1/numbers/%2B8617000000001").await;
    assert_eq!(status, 204);
    let (status, p) = app
        .post(
            "/v1/numbers:batch",
            &json!({"numbers": [{"number": X1, "area_code": "0755"}]}),
        )
        .await;
    assert_eq!(status, 201, "{p}");
    assert_eq!(p["items"][0]["live_bindings"], 0, "{p}");
    assert_eq!(p["items"][0]["quarantined_extensions"], 1, "{p}");
    assert_eq!(p["items"][0]["free_extensions"], 200, "{p}");
}

/// `axe-gateway numbers import FILE` against a SQLite file: all of the file or nothing.
#[test]
fn the_cli_imports_a_file_or_nothing() {
    use diesel::{Connection, RunQueryDsl};
    use std::process::Command;

    #[derive(diesel::QueryableByName, Debug, PartialEq)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        number: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        area_code: String,
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let db_file = dir.path().join("gateway.db");
    let pooled = || {
        let mut conn =
            diesel::SqliteConnection::establish(db_file.to_str().unwrap()).expect("open db");
        diesel::sql_query("SELECT number, area_code FROM virtual_numbers ORDER BY number")
            .load::<Row>(&mut conn)
            .expect("rows")
            .into_iter()
            .map(|r| (r.number, r.area_code))
            .collect::<Vec<_>>()
    };
    let import = |name: &str, csv: &str| {
        std::fs::write(dir.path().join(name), csv).expect("write csv");
        let out = Command::new(env!("CARGO_BIN_EXE_axe-gateway"))
            .args(["numbers", "import", name])
            // No `.env` from the checkout, and only this database.
            .current_dir(dir.path())
            .env("DATABASE_URL", format!("sqlite://{}", db_file.display()))
            .env("RUST_LOG", "warn")
            .output()
            .expect("run axe-gateway");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (ok, stderr) = import(
        "good.csv",
        "number,area_code\n# Shenzhen\n+8617100000001,0755\n\n  +8617100000002 , 0755 \n+8617100000003,021\n",
    );
    assert!(ok, "{stderr}");
    assert!(stderr.contains("imported 3 numbers"), "{stderr}");
    let expected = vec![
        ("+8617100000001".to_owned(), "0755".to_owned()),
        ("+8617100000002".to_owned(), "0755".to_owned()),
        ("+8617100000003".to_owned(), "021".to_owned()),
    ];
    assert_eq!(pooled(), expected);

    // Bad lines: every one is reported, nothing is added, and the exit status says so.
    let (ok, stderr) = import(
        "bad.csv",
        "+8617100000004,0755\n+8617100000005\n+8617100000006,75\n+8617100000004,021\n",
    );
    assert!(!ok, "{stderr}");
    for line in [
        "bad.csv:2: ",
        "bad.csv:3: area_code: ",
        "bad.csv:4: the number repeats line 1",
    ] {
        assert!(stderr.contains(line), "{line:?} in {stderr}");
    }
    assert!(stderr.contains("nothing was imported"), "{stderr}");
    assert!(
        !stderr.contains("+86171"),
        "no phone numbers in the output: {stderr}"
    );
    assert_eq!(pooled(), expected);

    // A number already in the pool: named by its line, nothing else is added either.
    let (ok, stderr) = import("again.csv", "+8617100000007,010\n+8617100000002,0755\n");
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("again.csv:2: the number is already in the pool"),
        "{stderr}"
    );
    assert_eq!(pooled(), expected);

    let (ok, stderr) = import("empty.csv", "# nothing here\n");
    assert!(!ok, "an empty file is a mistake: {stderr}");
}
