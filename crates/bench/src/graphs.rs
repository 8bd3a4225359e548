//! Workflow files of the workloads' shapes, as YAML text.

use std::fmt::Write as _;

/// What every node of a workload does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// `uses: noop`: done in the agent at once, no process.
    Noop,
    /// `run: "true"`: one `sh -e -c true` process.
    True,
}

impl Step {
    /// The name used in workflow and figure names.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Step::Noop => "noop",
            Step::True => "true",
        }
    }

    fn yaml(self) -> &'static str {
        match self {
            Step::Noop => "uses: noop",
            Step::True => "run: \"true\"",
        }
    }
}

/// One node line, `  ID: {ACTION, needs: [..]}`.
fn node(out: &mut String, id: &str, step: Step, needs: &[String]) {
    let _ = write!(out, "  {id}: {{{}", step.yaml());
    if !needs.is_empty() {
        let _ = write!(out, ", needs: [{}]", needs.join(", "));
    }
    out.push_str("}\n");
}

fn header(name: &str) -> String {
    format!("name: {name}\nnodes:\n")
}

/// `n0 → n1 → … → n(len-1)`.
pub(crate) fn chain(name: &str, len: usize, step: Step) -> String {
    let mut out = header(name);
    for i in 0..len {
        let needs: Vec<String> = if i == 0 {
            Vec::new()
        } else {
            vec![format!("n{}", i - 1)]
        };
        node(&mut out, &format!("n{i}"), step, &needs);
    }
    out
}

/// One root, `width` nodes that need it, and one join that needs them all.
pub(crate) fn fanout(name: &str, width: usize, step: Step) -> String {
    let mut out = header(name);
    node(&mut out, "root", step, &[]);
    let root = vec!["root".to_owned()];
    let ids: Vec<String> = (0..width).map(|i| format!("w{i}")).collect();
    for id in &ids {
        node(&mut out, id, step, &root);
    }
    node(&mut out, "join", step, &ids);
    out
}

/// `n` nodes with no needs.
pub(crate) fn independent(name: &str, n: usize, step: Step) -> String {
    let mut out = header(name);
    for i in 0..n {
        node(&mut out, &format!("n{i}"), step, &[]);
    }
    out
}

/// A random DAG of `n` `noop` nodes: node `i` needs one to three distinct earlier nodes,
/// except the first few and about one in twenty, which are roots.
///
/// The generator is seeded, so every run of the harness measures the same graph.
pub(crate) fn random_dag(name: &str, n: usize, seed: u64) -> String {
    let mut rng = SplitMix64(seed);
    let mut out = header(name);
    let mut needs = Vec::new();
    for i in 0..n {
        needs.clear();
        if i >= 4 && rng.below(20) != 0 {
            let k = 1 + rng.below(3);
            for _ in 0..k {
                let p = format!("n{}", rng.below(i as u64));
                if !needs.contains(&p) {
                    needs.push(p);
                }
            }
        }
        node(&mut out, &format!("n{i}"), Step::Noop, &needs);
    }
    out
}

/// A tiny, well-known PRNG: enough for graph shapes, and no dependency for it.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`); the modulo bias is irrelevant for graph shapes.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> baton_core::Workflow {
        baton_core::parse_workflow("w.yaml", text.as_bytes()).unwrap()
    }

    #[test]
    fn shapes_are_valid_workflows() {
        let c = parse(&chain("c", 4, Step::True));
        assert_eq!(c.nodes.len(), 4);
        assert_eq!(c.nodes[3].needs, vec!["n2".to_owned()]);
        let f = parse(&fanout("f", 5, Step::Noop));
        assert_eq!(f.nodes.len(), 7);
        assert_eq!(f.nodes[6].needs.len(), 5);
        assert_eq!(parse(&independent("i", 3, Step::Noop)).nodes.len(), 3);
    }

    #[test]
    fn the_largest_random_dag_fits_the_file_limits() {
        let text = random_dag("big", baton_core::MAX_NODES, 7);
        assert!(text.len() < baton_core::MAX_FILE_BYTES);
        let wf = parse(&text);
        assert_eq!(wf.nodes.len(), baton_core::MAX_NODES);
        assert!(wf.nodes.iter().filter(|n| n.needs.is_empty()).count() > 4);
        assert_eq!(text, random_dag("big", baton_core::MAX_NODES, 7));
    }
}
