//! Workflow files that must be accepted, and what they mean once parsed.

use std::collections::BTreeMap;

use baton_core::{
    Action, Dag, MAX_NODES, NodeSpec, RetryOn, RetryPolicy, Script, Workflow, parse_workflow,
};
use serde_json::json;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/valid");

fn parse(text: &str) -> Workflow {
    match parse_workflow("test.yaml", text.as_bytes()) {
        Ok(wf) => wf,
        Err(diags) => panic!("refused:\n{diags}"),
    }
}

fn fixture(file: &str) -> Workflow {
    let bytes = std::fs::read(format!("{DIR}/{file}")).expect("fixture exists");
    match parse_workflow(file, &bytes) {
        Ok(wf) => wf,
        Err(diags) => panic!("refused:\n{diags}"),
    }
}

fn node<'w>(wf: &'w Workflow, id: &str) -> &'w NodeSpec {
    wf.nodes.iter().find(|n| n.id == id).expect("node exists")
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn product_example_parses_with_defaults_merged() {
    let wf = fixture("release.yaml");
    assert_eq!(wf.name, "release");
    assert_eq!(wf.description.as_deref(), Some("Build and ship"));
    let ids: Vec<&str> = wf.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["checkout", "test", "plan", "deploy"]);

    let checkout = node(&wf, "checkout");
    assert_eq!(
        checkout.action,
        Action::Run(Script::One(
            "git clone https://example.invalid/repo src".into()
        ))
    );
    assert_eq!(checkout.env, map(&[("RUST_LOG", "info")]));
    assert_eq!(checkout.selector, map(&[("os", "linux")]));
    assert_eq!(checkout.retry, RetryPolicy::default());
    assert!(checkout.needs.is_empty());

    let test = node(&wf, "test");
    assert_eq!(test.needs, ["checkout"]);
    assert_eq!(
        test.action,
        Action::Run(Script::List(vec!["cd src".into(), "cargo test".into()]))
    );
    assert_eq!(test.timeout_ms, Some(600_000));
    assert_eq!(
        test.retry,
        RetryPolicy {
            attempts: 3,
            on: vec![RetryOn::Failure, RetryOn::Error],
            backoff_ms: 2_000,
            max_backoff_ms: 60_000,
            lost_attempts: RetryPolicy::default().lost_attempts,
        }
    );

    let plan = node(&wf, "plan");
    assert_eq!(
        plan.action,
        Action::Uses {
            function: "terraform-plan".into(),
            with: json!({"dir": "infra"}),
        }
    );
    assert_eq!(plan.selector, map(&[("env", "prod"), ("os", "linux")]));
    assert_eq!(
        plan.resources,
        [baton_core::ResourceUse::exclusive("prod-state")]
    );

    let deploy = node(&wf, "deploy");
    assert_eq!(deploy.needs, ["test", "plan"]);
    assert_eq!(deploy.artifacts, ["dist/**"]);

    let dag = Dag::compile(&wf);
    assert_eq!(dag.find_cycle(), None);
    assert_eq!(dag.roots().collect::<Vec<_>>(), [0]);
}

#[test]
fn json_form_with_tabs_means_the_same_as_yaml() {
    assert_eq!(fixture("release.json"), fixture("release.yaml"));
}

#[test]
fn node_env_and_selector_override_workflow_defaults() {
    let wf = parse(
        "name: r\n\
         env: {PORT: 8080, MODE: prod, FLAG: true, EMPTY: ''}\n\
         selector: {os: linux, arch: x86_64}\n\
         nodes:\n  \
           a:\n    \
             run: env\n    \
             env: {MODE: test, EXTRA: '1'}\n    \
             selector: {arch: arm64, kubernetes.io/zone: eu-1}\n",
    );
    let a = node(&wf, "a");
    assert_eq!(
        a.env,
        map(&[
            ("EMPTY", ""),
            ("EXTRA", "1"),
            ("FLAG", "true"),
            ("MODE", "test"),
            ("PORT", "8080"),
        ])
    );
    assert_eq!(
        a.selector,
        map(&[
            ("arch", "arm64"),
            ("kubernetes.io/zone", "eu-1"),
            ("os", "linux")
        ])
    );
}

#[test]
fn with_arguments_follow_the_yaml_core_schema() {
    let wf = parse(
        r#"name: r
nodes:
  call:
    uses: deploy_v2
    with:
      int: 42
      neg: -7
      hex: 0x1f
      float: 1.5
      exp: 1e3
      yes_bool: true
      no_bool: False
      nothing: ~
      empty:
      quoted_int: "42"
      quoted_bool: 'true'
      word: yes
      big: 18446744073709551615
      list: [1, two, null]
      nested: {a: {b: [x]}}
      literal: |
        line one
        line two
"#,
    );
    let Action::Uses { function, with } = &node(&wf, "call").action else {
        panic!("not a uses node");
    };
    assert_eq!(function, "deploy_v2");
    assert_eq!(
        with,
        &json!({
            "int": 42, "neg": -7, "hex": 31, "float": 1.5, "exp": 1000.0,
            "yes_bool": true, "no_bool": false, "nothing": null, "empty": null,
            "quoted_int": "42", "quoted_bool": "true", "word": "yes",
            "big": 18446744073709551615u64,
            "list": [1, "two", null], "nested": {"a": {"b": ["x"]}},
            "literal": "line one\nline two\n",
        })
    );
}

#[test]
fn uses_without_with_gets_empty_arguments() {
    let wf = parse("name: r\nnodes:\n  a: {uses: lint}\n  b: {uses: lint, with: }\n");
    for id in ["a", "b"] {
        assert_eq!(
            node(&wf, id).action,
            Action::Uses {
                function: "lint".into(),
                with: json!({}),
            }
        );
    }
}

#[test]
fn retry_given_takes_documented_defaults() {
    let wf = parse("name: r\nnodes:\n  a:\n    run: x\n    retry: {attempts: 5}\n");
    assert_eq!(
        node(&wf, "a").retry,
        RetryPolicy {
            attempts: 5,
            on: vec![RetryOn::Failure, RetryOn::Error, RetryOn::Timeout],
            backoff_ms: 1_000,
            max_backoff_ms: 60_000,
            lost_attempts: 2,
        }
    );
    let wf = parse(
        "name: r\nnodes:\n  a:\n    run: x\n    \
         retry: {attempts: 2, on: lost, backoff: 500ms, max_backoff: 2s}\n",
    );
    let retry = &node(&wf, "a").retry;
    assert_eq!(retry.on, [RetryOn::Lost]);
    assert_eq!((retry.backoff_ms, retry.max_backoff_ms), (500, 2_000));
}

#[test]
fn workflow_retry_is_every_nodes_default_and_a_node_retry_replaces_it() {
    let wf = parse(
        "name: r\n\
         retry: {attempts: 3, on: [failure], backoff: 5s}\n\
         nodes:\n  \
           a: {run: x}\n  \
           b: {run: x, retry: {attempts: 2, on: [lost]}}\n  \
           c: {run: x, retry: ~}\n",
    );
    let workflow_policy = RetryPolicy {
        attempts: 3,
        on: vec![RetryOn::Failure],
        backoff_ms: 5_000,
        max_backoff_ms: 60_000,
        lost_attempts: 2,
    };
    assert_eq!(node(&wf, "a").retry, workflow_policy);
    // Replaced whole, not merged key by key: b's backoff is the default, not 5s.
    assert_eq!(
        node(&wf, "b").retry,
        RetryPolicy {
            attempts: 2,
            on: vec![RetryOn::Lost],
            backoff_ms: 1_000,
            max_backoff_ms: 60_000,
            lost_attempts: 2,
        }
    );
    assert_eq!(
        node(&wf, "c").retry,
        workflow_policy,
        "null keeps the default"
    );
}

#[test]
fn workflow_timeout_is_the_run_timeout_and_node_timeout_stays_per_attempt() {
    let wf = parse("name: r\ntimeout: 1h\nnodes:\n  a: {run: x, timeout: 10m}\n  b: {run: x}\n");
    assert_eq!(wf.timeout_ms, Some(3_600_000));
    assert_eq!(node(&wf, "a").timeout_ms, Some(600_000));
    assert_eq!(
        node(&wf, "b").timeout_ms,
        None,
        "the run timeout is not a node default"
    );
    assert_eq!(parse("name: r\nnodes:\n  a: {run: x}\n").timeout_ms, None);
}

#[test]
fn queue_timeout_defaults_from_the_workflow_and_a_node_overrides_it() {
    let wf = parse(
        "name: r\nqueue_timeout: 10m\nnodes:\n  \
         a: {run: x}\n  b: {run: x, queue_timeout: 30s}\n  c: {run: x, queue_timeout: ~}\n",
    );
    assert_eq!(node(&wf, "a").queue_timeout_ms, Some(600_000));
    assert_eq!(node(&wf, "b").queue_timeout_ms, Some(30_000));
    assert_eq!(node(&wf, "c").queue_timeout_ms, Some(600_000));
    let plain = parse("name: r\nnodes:\n  a: {run: x}\n");
    assert_eq!(node(&plain, "a").queue_timeout_ms, None);
}

#[test]
fn workflows_without_the_new_keys_serialize_as_before() {
    // Stored definitions are hashed to find identical versions: keys left out must not
    // show up as nulls, or every old workflow would look changed.
    let wf = parse("name: r\nnodes:\n  a: {run: x}\n");
    let text = serde_json::to_string(&wf).expect("serialize");
    assert!(!text.contains("timeout"), "{text}");
}

#[test]
fn needs_may_be_a_single_string_and_repeats_count_once() {
    let wf = parse(
        "name: r\nnodes:\n  a: {run: x}\n  b: {run: x, needs: a}\n  c: {run: x, needs: [a, b, a]}\n",
    );
    assert_eq!(node(&wf, "b").needs, ["a"]);
    assert_eq!(node(&wf, "c").needs, ["a", "b"]);
}

#[test]
fn aliases_are_expanded() {
    let wf = parse(
        "name: r\n\
         env: &common {A: '1'}\n\
         nodes:\n  \
           a:\n    \
             run: &steps [make, make test]\n    \
             env: *common\n  \
           b:\n    \
             run: *steps\n    \
             needs: [a]\n",
    );
    assert_eq!(node(&wf, "b").action, node(&wf, "a").action);
    assert_eq!(node(&wf, "a").env, map(&[("A", "1")]));
}

#[test]
fn yaml_framing_variants_are_accepted() {
    let plain = parse("name: r\nnodes:\n  a:\n    run: make\n");
    let crlf = parse("name: r\r\nnodes:\r\n  a:\r\n    run: make\r\n");
    let bom = parse("\u{feff}name: r\nnodes:\n  a:\n    run: make\n");
    let marked = parse("%YAML 1.2\n---\nname: r\nnodes:\n  a:\n    run: make\n...\n");
    let quoted = parse("\"name\": 'r'\n'nodes':\n  \"a\":\n    \"run\": \"make\"\n");
    let comments = parse("# top\nname: r # the name\nnodes:\n  # a node\n  a:\n    run: make\n");
    for other in [crlf, bom, marked, quoted, comments] {
        assert_eq!(other, plain);
    }
}

#[test]
fn compact_json_is_accepted() {
    let wf = parse(
        r#"{"name":"r","nodes":{"a":{"run":["make"]},"b":{"needs":["a"],"uses":"f","with":{"n":1}}}}"#,
    );
    assert_eq!(wf.nodes.len(), 2);
    assert_eq!(node(&wf, "b").needs, ["a"]);
}

#[test]
fn optional_keys_may_be_null() {
    let wf = parse(
        "name: r\ndescription:\nenv:\nselector: ~\nnodes:\n  a:\n    run: x\n    \
         needs:\n    env:\n    timeout:\n    retry:\n    resources:\n    artifacts: ~\n",
    );
    assert_eq!(wf.description, None);
    let a = node(&wf, "a");
    assert!(a.env.is_empty() && a.needs.is_empty() && a.resources.is_empty());
    assert_eq!(a.retry, RetryPolicy::default());
    assert_eq!(a.timeout_ms, None);
}

#[test]
fn ten_thousand_nodes_parse() {
    let mut text = String::from("name: big\nnodes:\n");
    for i in 0..MAX_NODES {
        if i == 0 {
            text.push_str("  n0:\n    run: echo 0\n");
        } else {
            text.push_str(&format!(
                "  n{i}:\n    needs: [n{}]\n    run: echo {i}\n",
                i - 1
            ));
        }
    }
    let wf = parse(&text);
    assert_eq!(wf.nodes.len(), MAX_NODES);
    assert_eq!(
        wf.nodes[MAX_NODES - 1].needs,
        [format!("n{}", MAX_NODES - 2)]
    );
    assert_eq!(Dag::compile(&wf).find_cycle(), None);
}

#[test]
fn nesting_up_to_the_limit_is_accepted_and_no_further() {
    // Levels: top mapping, nodes, the node, with, then the lists.
    let nested = |lists: usize| {
        format!(
            "name: r\nnodes:\n  a:\n    uses: f\n    with:\n      deep: {}1{}\n",
            "[".repeat(lists),
            "]".repeat(lists)
        )
    };
    let wf = parse(&nested(60));
    assert!(matches!(node(&wf, "a").action, Action::Uses { .. }));
    let diags = parse_workflow("deep.yaml", nested(61).as_bytes()).expect_err("too deep");
    assert_eq!(
        diags.to_string(),
        "deep.yaml:6:73: values nested deeper than 64 levels"
    );
}

#[test]
fn scheduling_keys_are_read() {
    use baton_core::{Concurrency, OnConflict, ResourceUse, When};
    let wf = baton_core::parse_workflow(
        "sched.yaml",
        br#"
name: sched
priority: -5
concurrency: {limit: 2, on_conflict: cancel_running}
nodes:
  a: {run: "true", resources: [db, {name: pool, count: 3}]}
  b: {run: "true"}
  merge: {needs: [a, b], when: any_success, run: "true"}
  alert: {needs: [a, b], when: any_failure, run: "true"}
  always: {needs: [merge, alert], when: all_done, run: "true"}
"#,
    )
    .expect("valid");
    assert_eq!(wf.priority, -5);
    assert_eq!(
        wf.concurrency,
        Some(Concurrency {
            limit: 2,
            on_conflict: OnConflict::CancelRunning
        })
    );
    let a = node(&wf, "a");
    assert_eq!(
        a.resources,
        [
            ResourceUse::exclusive("db"),
            ResourceUse {
                name: "pool".into(),
                count: 3
            }
        ]
    );
    assert_eq!(a.when, When::AllSuccess);
    assert_eq!(node(&wf, "merge").when, When::AnySuccess);
    assert_eq!(node(&wf, "alert").when, When::AnyFailure);
    assert_eq!(node(&wf, "always").when, When::AllDone);
    // Stored form: a count of 1 stays a bare name, so older versions read the same.
    let json = serde_json::to_value(&wf).expect("serialises");
    assert_eq!(
        json["nodes"][0]["resources"],
        serde_json::json!(["db", {"name": "pool", "count": 3}])
    );
    let back: baton_core::Workflow = serde_json::from_value(json).expect("reads back");
    assert_eq!(back, wf);
    // Defaults are left out of the stored form.
    let plain =
        baton_core::parse_workflow("p.yaml", b"name: p\nnodes: {a: {run: 'true'}}").expect("valid");
    let text = serde_json::to_string(&plain).expect("serialises");
    assert!(
        !text.contains("when") && !text.contains("priority") && !text.contains("concurrency"),
        "{text}"
    );
}

#[test]
fn env_secret_references_are_kept_apart_and_nodes_override_the_workflow() {
    let wf = parse(
        "name: s\nenv: {API_KEY: {secret: API_KEY}, MODE: fast}\nnodes:\n  \
         a: {run: 'true'}\n  \
         b: {run: 'true', env: {API_KEY: plain, TOKEN: {secret: DEPLOY_TOKEN}, MODE: {secret: M}}}\n",
    );
    let a = wf.nodes.iter().find(|n| n.id == "a").expect("a");
    assert_eq!(a.secrets, map(&[("API_KEY", "API_KEY")]));
    assert_eq!(a.env, map(&[("MODE", "fast")]));
    let b = wf.nodes.iter().find(|n| n.id == "b").expect("b");
    assert_eq!(b.secrets, map(&[("MODE", "M"), ("TOKEN", "DEPLOY_TOKEN")]));
    assert_eq!(b.env, map(&[("API_KEY", "plain")]));
    let stored = serde_json::to_value(&wf).expect("json");
    assert_eq!(stored["nodes"][1]["secrets"]["TOKEN"], "DEPLOY_TOKEN");
    assert!(
        stored["nodes"][0].get("secrets").is_some(),
        "references are stored, values never are"
    );
}

#[test]
fn bad_secret_references_are_reported_where_they_are() {
    for (text, wanted) in [
        ("{X: {secret: 1bad}}", "secret name"),
        ("{X: {secret: A, other: 1}}", "unknown key \"other\""),
        ("{X: {}}", "needs {secret: NAME}"),
        ("{X: [a]}", "must be a string or {secret: NAME}"),
    ] {
        let file = format!("name: s\nnodes:\n  a:\n    run: 'true'\n    env: {text}\n");
        let diags = parse_workflow("s.yaml", file.as_bytes()).expect_err(text);
        let shown = diags.to_string();
        assert!(shown.contains(wanted), "{text}: {shown}");
        assert!(shown.contains("s.yaml:5:"), "{text}: position in {shown}");
    }
}
