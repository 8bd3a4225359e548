//! Property tests: no input makes the parser panic, and what it accepts is a sound graph.

use std::collections::HashSet;

use baton_core::{Dag, parse_workflow};
use proptest::prelude::*;

const VALID: &str = include_str!("fixtures/valid/release.yaml");
const VALID_JSON: &str = include_str!("fixtures/valid/release.json");

/// What every result must satisfy, accepted or refused.
fn check_result(file: &str, bytes: &[u8]) {
    match parse_workflow(file, bytes) {
        Ok(wf) => {
            let ids: HashSet<&str> = wf.nodes.iter().map(|n| n.id.as_str()).collect();
            assert_eq!(ids.len(), wf.nodes.len(), "ids are unique");
            for n in &wf.nodes {
                for need in &n.needs {
                    assert!(ids.contains(need.as_str()), "{need} exists");
                    assert_ne!(need, &n.id, "no node needs itself");
                }
            }
            assert_eq!(Dag::compile(&wf).find_cycle(), None);
        }
        Err(diags) => {
            assert!(!diags.0.is_empty());
            for d in &diags.0 {
                assert_eq!(d.file, file);
                assert!(!d.message.is_empty());
                assert!(d.line.is_none_or(|l| l >= 1));
                assert!(d.column.is_none_or(|c| c >= 1));
            }
        }
    }
}

/// One edit of a byte string: the kinds of damage a hand-edited file suffers.
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Duplicate(usize, usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let snippet = prop_oneof![
        proptest::collection::vec(any::<u8>(), 1..8),
        prop::sample::select(vec![
            b"[".to_vec(),
            b"{".to_vec(),
            b"]".to_vec(),
            b"}".to_vec(),
            b": ".to_vec(),
            b"\n  - ".to_vec(),
            b"&a ".to_vec(),
            b"*a".to_vec(),
            b"!!str ".to_vec(),
            b"\t".to_vec(),
            b"\"".to_vec(),
            b"---\n".to_vec(),
            b"? ".to_vec(),
            b"needs: [test]\n".to_vec(),
            b"\xff".to_vec(),
            b"<<: *a\n".to_vec(),
        ]),
    ];
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Flip(at, b)),
        (any::<usize>(), snippet).prop_map(|(at, s)| Edit::Insert(at, s)),
        (any::<usize>(), 1usize..40).prop_map(|(at, n)| Edit::Delete(at, n)),
        (any::<usize>(), 1usize..80, any::<usize>())
            .prop_map(|(from, n, to)| Edit::Duplicate(from, n, to)),
    ]
}

fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
    let len = bytes.len().max(1);
    match edit {
        Edit::Flip(at, b) => {
            if let Some(x) = bytes.get_mut(at % len) {
                *x = *b;
            }
        }
        Edit::Insert(at, s) => {
            let at = at % (bytes.len() + 1);
            bytes.splice(at..at, s.iter().copied());
        }
        Edit::Delete(at, n) => {
            let at = at % len;
            let end = (at + n).min(bytes.len());
            if at < end {
                bytes.drain(at..end);
            }
        }
        Edit::Duplicate(from, n, to) => {
            let from = from % len;
            let end = (from + n).min(bytes.len());
            let piece: Vec<u8> = bytes.get(from..end).unwrap_or_default().to_vec();
            let to = to % (bytes.len() + 1);
            bytes.splice(to..to, piece);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check_result("random.yaml", &bytes);
    }

    #[test]
    fn random_text_never_panics(text in "[ -~\t\n]{0,400}") {
        check_result("random.yaml", text.as_bytes());
    }

    #[test]
    fn mutated_valid_files_never_panic(
        json in any::<bool>(),
        edits in proptest::collection::vec(edit(), 1..6),
    ) {
        let mut bytes = if json { VALID_JSON } else { VALID }.as_bytes().to_vec();
        for e in &edits {
            apply(&mut bytes, e);
        }
        check_result("mutated.yaml", &bytes);
    }

    #[test]
    fn random_acyclic_graphs_parse_with_their_edges(
        needs in proptest::collection::vec(proptest::collection::vec(any::<prop::sample::Index>(), 0..4), 1..40),
    ) {
        // Node i may only need nodes before it, so the graph is acyclic by construction.
        let mut text = String::from("name: g\nnodes:\n");
        let mut expected = Vec::new();
        for (i, picks) in needs.iter().enumerate() {
            let mut ns: Vec<String> = Vec::new();
            if i > 0 {
                for p in picks {
                    let need = format!("n{}", p.index(i));
                    if !ns.contains(&need) {
                        ns.push(need);
                    }
                }
            }
            text.push_str(&format!("  n{i}:\n    run: echo {i}\n    needs: [{}]\n", ns.join(", ")));
            expected.push(ns);
        }
        let wf = parse_workflow("g.yaml", text.as_bytes()).map_err(|d| d.to_string());
        let wf = wf.map_err(TestCaseError::fail)?;
        let got: Vec<Vec<String>> = wf.nodes.iter().map(|n| n.needs.clone()).collect();
        prop_assert_eq!(got, expected);
    }
}
