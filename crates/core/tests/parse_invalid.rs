//! Every kind of problem in a workflow file, as the user sees it: one insta snapshot of the
//! rendered diagnostics per bad file in `fixtures/invalid/`, with the file itself as the
//! snapshot's description.

use std::path::Path;

use baton_core::{MAX_FILE_BYTES, MAX_NODES, parse_workflow};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/invalid");

/// Parses `bytes`, which must be refused, and renders what the user would see.
fn refused(file: &str, bytes: &[u8]) -> String {
    match parse_workflow(file, bytes) {
        Ok(wf) => panic!("{file} was accepted: {wf:?}"),
        Err(diags) => {
            assert!(!diags.0.is_empty(), "{file}: refused without a reason");
            diags.to_string()
        }
    }
}

fn snapshot_fixture(file: &str) {
    let bytes = std::fs::read(Path::new(DIR).join(file)).expect("fixture exists");
    let rendered = refused(file, &bytes);
    let name = file.replace('.', "_");
    insta::with_settings!({
        description => String::from_utf8_lossy(&bytes).into_owned(),
        omit_expression => true,
        prepend_module_to_snapshot => false,
        snapshot_path => "snapshots/parse_invalid",
    }, {
        insta::assert_snapshot!(name, rendered);
    });
}

macro_rules! bad_files {
    ($($test:ident => $file:literal,)*) => {
        $(
            #[test]
            fn $test() {
                snapshot_fixture($file);
            }
        )*

        #[test]
        fn every_fixture_has_a_test() {
            let listed = [$($file),*];
            for entry in std::fs::read_dir(DIR).expect("fixture dir") {
                let name = entry.expect("dir entry").file_name().into_string().expect("utf-8 name");
                assert!(listed.contains(&name.as_str()), "no test for fixtures/invalid/{name}");
            }
        }
    };
}

bad_files! {
    cycle_is_reported_as_a_path => "cycle.yaml",
    several_cycles_are_each_reported => "cycles_several.yaml",
    unknown_need_suggests_a_close_node => "unknown_need.yaml",
    unknown_need_without_close_node_has_no_suggestion => "unknown_need_far.yaml",
    self_dependency_is_refused => "self_need.yaml",
    duplicate_key_in_node_is_refused => "duplicate_key.yaml",
    duplicate_node_id_is_refused => "duplicate_node_id.yaml",
    duplicate_keys_are_found_at_any_depth => "duplicate_key_nested.yaml",
    unknown_key_suggests_a_close_key => "unknown_key_close.yaml",
    unknown_key_lists_allowed_keys => "unknown_key_far.yaml",
    unknown_top_level_key_is_refused => "unknown_top_key.yaml",
    bad_workflow_name_is_refused => "bad_workflow_name.yaml",
    bad_node_ids_are_refused => "bad_node_id.yaml",
    bad_function_env_label_and_resource_names_are_refused => "bad_names.yaml",
    bad_durations_are_refused => "bad_duration.yaml",
    run_and_uses_together_are_refused => "run_and_uses.yaml",
    node_without_run_or_uses_is_refused => "neither_run_nor_uses.yaml",
    with_without_uses_is_refused => "with_without_uses.yaml",
    empty_nodes_is_refused => "empty_nodes.yaml",
    wrong_types_are_named => "wrong_types.yaml",
    missing_name_and_nodes_are_reported => "missing_name_and_nodes.yaml",
    bad_retry_policies_are_refused => "retry.yaml",
    bad_workflow_defaults_and_queue_timeouts_are_refused => "workflow_defaults.yaml",
    artifacts_outside_the_work_dir_are_refused => "artifacts.yaml",
    several_documents_are_refused => "several_documents.yaml",
    empty_file_is_refused => "empty.yaml",
    file_of_comments_is_empty => "comments_only.yaml",
    yaml_syntax_error_has_the_parser_position => "syntax_error.yaml",
    unclosed_quote_is_a_syntax_error => "unclosed_quote.yaml",
    tab_indentation_is_a_syntax_error => "tab_indent.yaml",
    top_level_list_is_refused => "top_level_list.yaml",
    json_duplicates_and_unknown_needs_are_reported => "bad_json.json",
    json_syntax_error_has_a_position => "broken_json.json",
    bad_run_values_are_refused => "run_values.yaml",
    null_and_collection_env_values_are_refused => "env_values.yaml",
    unsupported_tags_are_refused => "unsupported_tag.yaml",
    merge_keys_are_refused_with_a_hint => "merge_key.yaml",
    with_values_outside_json_are_refused => "with_values.yaml",
    collection_as_mapping_key_is_refused => "collection_key.yaml",
    alias_bomb_is_refused => "alias_bomb.yaml",
    alias_inside_its_own_anchor_is_refused => "recursive_alias.yaml",
    alias_to_an_unknown_anchor_is_refused => "unknown_alias.yaml",
    every_problem_of_a_file_is_reported_at_once => "many_problems.yaml",
    bad_trigger_rules_resources_priority_and_concurrency_are_refused => "scheduling.yaml",
    concurrency_needs_a_limit_and_priority_a_bound => "concurrency_without_limit.yaml",
}

fn snapshot_generated(name: &str, rendered: String) {
    insta::with_settings!({
        omit_expression => true,
        prepend_module_to_snapshot => false,
        snapshot_path => "snapshots/parse_invalid",
    }, {
        insta::assert_snapshot!(name, rendered);
    });
}

#[test]
fn file_over_the_size_limit_is_refused_before_parsing() {
    // Not YAML at all: the size is checked before the parser sees a byte.
    let bytes = vec![b'['; MAX_FILE_BYTES + 1];
    snapshot_generated("too_big", refused("big.yaml", &bytes));
}

#[test]
fn invalid_utf8_reports_the_first_bad_byte() {
    let bytes = b"name: release\nnodes:\n  b\xc3\xa9:\n    run: \"caf\xe9\"\n";
    snapshot_generated("invalid_utf8", refused("latin1.yaml", bytes));
}

#[test]
fn truncated_utf8_at_the_end_is_reported() {
    let rendered = refused("cut.yaml", b"name: r\xc3");
    assert_eq!(
        rendered,
        "cut.yaml:1:8: file is not valid utf-8 (byte 0xc3)"
    );
}

#[test]
fn deep_flow_nesting_is_refused_without_overflow() {
    let bytes = "[".repeat(100_000);
    snapshot_generated("deep_flow", refused("deep.yaml", bytes.as_bytes()));
}

#[test]
fn deep_block_nesting_is_refused() {
    let mut text = String::new();
    for depth in 0..100 {
        text.push_str(&"  ".repeat(depth));
        text.push_str("a:\n");
    }
    snapshot_generated("deep_block", refused("deep.yaml", text.as_bytes()));
}

#[test]
fn aliases_cannot_nest_past_the_depth_limit() {
    // Each alias is shallow where it is written but carries the depth of what it names.
    let mut text = String::from("name: r\nnodes:\n  a:\n    uses: f\n    with:\n");
    text.push_str(&format!(
        "      d0: &d0 {}{}\n",
        "[".repeat(40),
        "]".repeat(40)
    ));
    text.push_str("      d1: &d1 [[[[[[[[[[[[[[[[[[[[[[[[[[[*d0]]]]]]]]]]]]]]]]]]]]]]]]]]]\n");
    snapshot_generated("deep_alias", refused("deep.yaml", text.as_bytes()));
}

#[test]
fn more_than_max_nodes_is_refused() {
    let mut text = String::from("name: big\nnodes:\n");
    for i in 0..=MAX_NODES {
        text.push_str(&format!("  n{i}: {{run: echo}}\n"));
    }
    snapshot_generated("too_many_nodes", refused("big.yaml", text.as_bytes()));
}

#[test]
fn a_flood_of_problems_is_capped() {
    let mut text = String::from("name: r\nnodes:\n");
    for i in 0..2_000 {
        text.push_str(&format!("  n{i}: {{}}\n"));
    }
    let diags = parse_workflow("flood.yaml", text.as_bytes()).expect_err("refused");
    assert_eq!(diags.0.len(), 1_001);
    let last = diags.0.last().expect("one");
    assert_eq!(
        last.message,
        "1000 more problems not shown (at most 1000 are reported)"
    );
}
