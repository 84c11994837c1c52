//! Tenants are walled off: another tenant's resources answer exactly like
//! missing ones; bad tokens are 401, disabled tenants 403, quotas 429.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::backend::TestStore;
use crate::server::{ADMIN, Body, Server};

const HELLO: &str = "name: greet\nsteps:\n  - id: hi\n    task: hello\n    input: {name: Ada}\n";

crate::on_both_backends! {
    async fn a_tenant_sees_none_of_another_tenants_resources(store: TestStore) {
        let server = Server::on(&store, &[]);
        let alice = server.tenant("alice", json!({})).await;
        let bob = server.tenant("bob", json!({})).await;
        server.upload(&alice, &["hello"]).await;
        server.push(&alice, "greet", HELLO).await;
        let run = server.start_run(&alice, "greet", json!({})).await;
        assert_eq!(server.wait(&alice, run).await["status"], "succeeded");

        let probes: Vec<(Method, String, Body)> = vec![
            (Method::GET, "/v1/modules/hello".into(), Body::None),
            (Method::DELETE, "/v1/modules/hello".into(), Body::None),
            (Method::GET, "/v1/workflows/greet".into(), Body::None),
            (Method::POST, "/v1/workflows/greet/runs".into(), Body::Json(json!({}))),
            (Method::GET, format!("/v1/runs/{run}"), Body::None),
            (Method::POST, format!("/v1/runs/{run}/cancel"), Body::None),
            (Method::POST, format!("/v1/runs/{run}/retry"), Body::None),
            (Method::GET, format!("/v1/runs/{run}/events"), Body::None),
            (Method::GET, format!("/v1/runs/{run}/steps/hi/logs"), Body::None),
        ];
        for (method, path, body) in probes {
            let (status, answer) = server.call(Some(&bob), method.clone(), &path, body.clone()).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
            assert_eq!(answer["error"]["code"], "not_found", "{method} {path}");
            // And it looks exactly like something that does not exist at all.
            let missing = path
                .replace("hello", "nothing")
                .replace("greet", "nothing")
                .replace(&format!("/runs/{run}"), "/runs/999999");
            let (status, nothing) = server.call(Some(&bob), method.clone(), &missing, body).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {missing}");
            let shape = |v: &Value| {
                v["error"]["message"]
                    .as_str()
                    .unwrap()
                    .replace("999999", "N")
                    .replace(&format!("run {run} "), "run N ")
                    .replace("hello", "X")
                    .replace("greet", "X")
                    .replace("nothing", "X")
            };
            assert_eq!(
                shape(&answer),
                shape(&nothing),
                "{method} {path} differs from a missing resource"
            );
        }

        // Lists show only one's own.
        for path in ["/v1/modules", "/v1/workflows", "/v1/runs"] {
            let (status, answer) = server.call(Some(&bob), Method::GET, path, Body::None).await;
            assert_eq!(status, StatusCode::OK);
            let list = answer.as_object().unwrap().values().next().unwrap();
            assert_eq!(list, &json!([]), "{path} shows another tenant's: {answer}");
        }

        // A step may not reach alice's module by its digest either.
        server.upload(&bob, &["hello"]).await;
        let digest = crate::common::guest_bytes("flaky");
        server.upload(&alice, &["flaky"]).await;
        let flaky = format!("sha256:{}", sha256(&digest));
        let yaml = format!("name: steal\nsteps:\n  - id: s\n    task: \"{flaky}\"\n");
        let (status, answer) = server
            .call(
                Some(&bob),
                Method::PUT,
                "/v1/workflows/steal",
                Body::Raw("application/yaml", yaml.into_bytes()),
            )
            .await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_module"))
        );

        // Bob's own module of the same bytes is his.
        let (status, _) = server
            .call(Some(&bob), Method::GET, "/v1/modules/hello", Body::None)
            .await;
        assert_eq!(status, StatusCode::OK);
    }
}

fn sha256(bytes: &[u8]) -> String {
    weft::Digest::of(bytes)
        .to_string()
        .trim_start_matches("sha256:")
        .to_string()
}

crate::on_both_backends! {
    async fn tokens_are_checked_and_a_disabled_tenant_is_refused(store: TestStore) {
        let server = Server::on(&store, &[]);
        let key = server.tenant("acme", json!({})).await;

        let (status, answer) = server.call(None, Method::GET, "/v1/runs", Body::None).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("unauthorized"))
        );
        for wrong in ["nonsense", "wk_000000000000_secret", &format!("{key}x"), ADMIN] {
            let (status, _) = server.call(Some(wrong), Method::GET, "/v1/runs", Body::None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{wrong}");
        }
        let (status, _) = server
            .call(Some(&key), Method::GET, "/v1/admin/tenants", Body::None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "a tenant key is not the admin token");

        // A second key works; revoked, it does not.
        let (status, second) = server
            .call(Some(ADMIN), Method::POST, "/v1/admin/tenants/acme/keys", Body::None)
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let second_token = second["token"].as_str().unwrap();
        assert_eq!(
            server
                .call(Some(second_token), Method::GET, "/v1/runs", Body::None)
                .await
                .0,
            StatusCode::OK
        );
        let revoke = format!("/v1/admin/tenants/acme/keys/{}", second["key_id"].as_str().unwrap());
        assert_eq!(
            server.call(Some(ADMIN), Method::DELETE, &revoke, Body::None).await.0,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            server
                .call(Some(second_token), Method::GET, "/v1/runs", Body::None)
                .await
                .0,
            StatusCode::UNAUTHORIZED
        );

        let (status, _) = server
            .call(Some(ADMIN), Method::POST, "/v1/admin/tenants/acme/disable", Body::None)
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, answer) = server.call(Some(&key), Method::GET, "/v1/runs", Body::None).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("tenant_disabled"))
        );
        server
            .call(Some(ADMIN), Method::POST, "/v1/admin/tenants/acme/enable", Body::None)
            .await;
        assert_eq!(
            server.call(Some(&key), Method::GET, "/v1/runs", Body::None).await.0,
            StatusCode::OK
        );

        // The token is stored nowhere in the clear.
        let store = store.dump();
        let secret = key.rsplit('_').next().unwrap();
        assert!(
            !store.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the key's secret is in the store"
        );
    }
}

crate::on_both_backends! {
    async fn exceeded_quotas_answer_429_with_a_reason(store: TestStore) {
        let server = Server::on(&store, &[]);
        let quotas = json!({"max_modules": 2, "max_concurrent_runs": 1, "start_rate": 2.0});
        let key = server.tenant("small", quotas).await;
        server.upload(&key, &["hello", "misbehave"]).await;

        let quota = |answer: &Value| answer["error"]["code"] == "quota_exceeded";
        let flaky = crate::common::guest_bytes("flaky");
        let (status, answer) = server
            .call(
                Some(&key),
                Method::PUT,
                "/v1/modules/flaky",
                Body::Raw("application/wasm", flaky),
            )
            .await;
        assert!(status == StatusCode::TOO_MANY_REQUESTS && quota(&answer), "{answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains("max_modules"),
            "{answer}"
        );

        let tiny = server.tenant("tiny", json!({"max_module_size": 100_000})).await;
        let hello = crate::common::guest_bytes("hello");
        assert!(hello.len() > 100_000);
        let (status, answer) = server
            .call(
                Some(&tiny),
                Method::PUT,
                "/v1/modules/hello",
                Body::Raw("application/wasm", hello),
            )
            .await;
        assert!(status == StatusCode::TOO_MANY_REQUESTS && quota(&answer), "{answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains("max_module_size"),
            "{answer}"
        );

        server
            .push(
                &key,
                "sleepy",
                "name: sleepy\nsteps:\n  - id: nap\n    task: misbehave\n    input: {mode: sleep, ms: 60000}\n",
            )
            .await;
        server.start_run(&key, "sleepy", json!({})).await;
        let (status, answer) = server
            .call(
                Some(&key),
                Method::POST,
                "/v1/workflows/sleepy/runs",
                Body::Json(json!({})),
            )
            .await;
        assert!(status == StatusCode::TOO_MANY_REQUESTS && quota(&answer), "{answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains("unfinished"),
            "{answer}"
        );

        // Two starts per second: the burst is spent by now.
        let response = server
            .http
            .post(format!("{}/v1/workflows/sleepy/runs", server.url))
            .bearer_auth(&key)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(response.headers().contains_key("retry-after"));
        let answer: Value = response.json().await.unwrap();
        assert!(
            answer["error"]["message"].as_str().unwrap().contains("per second"),
            "{answer}"
        );
    }
}

crate::on_both_backends! {
    async fn a_tenant_runs_no_more_attempts_at_once_than_its_quota(store: TestStore) {
        let server = Server::on(&store, &[]);
        let key = server.tenant("serial", json!({"max_concurrent_attempts": 1})).await;
        let (_, tenants) = server.call(Some(ADMIN), Method::GET, "/v1/admin/tenants", Body::None).await;
        assert_eq!(tenants["tenants"][0]["quotas"]["max_concurrent_attempts"], 1, "{tenants}");
        server.upload(&key, &["misbehave"]).await;
        server
            .push(
                &key,
                "naps",
                "name: naps\nsteps:\n  - id: nap\n    task: misbehave\n    for_each: '[1, 2, 3]'\n    \
                 input: {mode: sleep, ms: 300}\n",
            )
            .await;
        let run = server.start_run(&key, "naps", json!({})).await;
        let run = server.wait(&key, run).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        let mut starts: Vec<u64> = run["steps"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|step| step["attempts"].as_array().unwrap())
            .map(|attempt| attempt["started_at"].as_u64().unwrap())
            .collect();
        starts.sort();
        assert_eq!(starts.len(), 3, "{run}");
        assert!(starts[2] - starts[0] >= 550, "the naps overlapped: started at {starts:?}");
    }
}
