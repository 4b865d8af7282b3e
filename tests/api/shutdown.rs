//! SIGTERM during load: the gateway stops accepting, finishes what it took, stops its jobs and
//! exits 0, and every create it answered is in the database.

use std::process::Command;
use std::time::{Duration, Instant};

use diesel::prelude::*;

use crate::serve;

#[actix_web::test]
async fn sigterm_during_load_finishes_what_was_taken_and_exits_0() {
    let dir = tempfile::tempdir().expect("dir");
    let (mut serve, banner) = serve::start(
        dir.path(),
        &[
            ("SHUTDOWN_TIMEOUT_SECS", "5"),
            ("MAX_BINDINGS_PER_NUMBER", "9999"),
        ],
    );
    let pid = serve.0.id();
    let (mut api, mut token) = (String::new(), String::new());
    for line in &banner {
        if let Some(a) = line.strip_prefix("API:") {
            api = a.trim().to_owned();
        }
        if let Some(t) = line.strip_prefix("export TOKEN=") {
            token = t.to_owned();
        }
    }
    assert!(
        !api.is_empty() && !token.is_empty(),
        "banner: {api} {token}"
    );

    // Sixteen clients create bindings back to back; SIGTERM arrives in the middle.
    let started = Instant::now();
    let clients: Vec<_> = (0..16)
        .map(|c| {
            let (api, token) = (api.clone(), token.clone());
            actix_rt::spawn(async move {
                let client = awc::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .finish();
                let mut answered = Vec::new();
                for n in 0.. {
                    let body = serde_json::json!({
                        "order_id": format!("term-{c}-{n}"),
                        "bind_num": format!("+86138{:04}{:04}", c, n),
                        "area_code": "0755",
                    });
                    let Ok(mut resp) = client
                        .post(format!("{api}/v1/bindings"))
                        .insert_header(("Authorization", format!("Bearer {token}")))
                        .send_json(&body)
                        .await
                    else {
                        // Refused or cut once the gateway stopped accepting: the end.
                        break;
                    };
                    let status = resp.status().as_u16();
                    let json: serde_json::Value = resp.json().await.unwrap_or_default();
                    answered.push((status, json));
                }
                answered
            })
        })
        .collect();
    actix_rt::time::sleep(Duration::from_millis(700)).await;
    let term = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill -TERM");
    assert!(term.success());

    let mut answered = Vec::new();
    for c in clients {
        answered.extend(c.await.expect("client"));
    }
    let exit = loop {
        if let Some(status) = serve.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still running long after SIGTERM"
        );
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "exit status after SIGTERM: {exit:?}");

    // Every answer was a success (no 5xx from the shutdown), and every created binding is
    // in the database as the gateway answered it.
    assert!(
        answered.len() > 16,
        "load before SIGTERM: {}",
        answered.len()
    );
    let mut conn = SqliteConnection::establish(&format!("{}/axe-gateway.db", dir.path().display()))
        .expect("open the gateway's database");
    for (status, b) in &answered {
        assert!(
            *status == 201 || *status == 202,
            "an answer during shutdown: {status} {b}"
        );
        let id = b["id"].as_str().expect("id");
        let stored: String = diesel::sql_query("SELECT status FROM bindings WHERE id = ?")
            .bind::<diesel::sql_types::Text, _>(id)
            .load::<Status>(&mut conn)
            .expect("query")
            .pop()
            .map(|s| s.status)
            .unwrap_or_else(|| panic!("binding {id} answered {status} has no row"));
        assert_eq!(stored, b["status"].as_str().unwrap(), "{id}");
    }
}

#[derive(QueryableByName)]
struct Status {
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: String,
}
