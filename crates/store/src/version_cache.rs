//! A bounded map of compiled workflow versions, shared by both backends.
//!
//! Versions never change, so a compiled one can be kept as long as memory allows; but a
//! server that keeps applying large workflows must not grow without end (a 10,000-node
//! version compiles to about 13 MiB). The map is bounded by the nodes it holds and by its
//! entry count, and drops the least recently used version first. A dropped version is
//! simply compiled again from its row on its next use.

use std::collections::HashMap;
use std::sync::Arc;

use crate::sqlite::cache::Compiled;

/// Most nodes held across all cached versions (about 65 MiB of compiled graphs).
const MAX_NODES: usize = 50_000;
/// Most versions held, whatever their size, so eviction scans stay short.
const MAX_ENTRIES: usize = 1_024;

/// Compiled versions by id, least recently used dropped first.
#[derive(Debug, Default)]
pub(crate) struct VersionCache {
    entries: HashMap<String, (Arc<Compiled>, u64)>,
    nodes: usize,
    clock: u64,
}

impl VersionCache {
    /// The cached version with this id, marking it used.
    pub(crate) fn get(&mut self, id: &str) -> Option<Arc<Compiled>> {
        self.clock += 1;
        let clock = self.clock;
        self.entries.get_mut(id).map(|(c, used)| {
            *used = clock;
            c.clone()
        })
    }

    /// Caches a version, dropping the least recently used ones beyond the bounds. The
    /// newest entry always stays, even when it alone is over the node bound.
    pub(crate) fn insert(&mut self, id: &str, compiled: Arc<Compiled>) {
        self.clock += 1;
        self.nodes += compiled.workflow.nodes.len();
        if let Some((old, _)) = self.entries.insert(id.to_owned(), (compiled, self.clock)) {
            self.nodes -= old.workflow.nodes.len();
        }
        while (self.nodes > MAX_NODES || self.entries.len() > MAX_ENTRIES) && self.entries.len() > 1
        {
            let Some(oldest) = self
                .entries
                .iter()
                .filter(|(k, _)| k.as_str() != id)
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some((old, _)) = self.entries.remove(&oldest) {
                self.nodes -= old.workflow.nodes.len();
            }
        }
    }

    /// Number of cached versions.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use baton_core::{Action, Dag, NodeSpec, RetryPolicy, Script, Workflow};

    use super::*;

    fn compiled(nodes: usize) -> Arc<Compiled> {
        let workflow = Workflow {
            name: "w".into(),
            description: None,
            timeout_ms: None,
            priority: 0,
            concurrency: None,
            nodes: (0..nodes)
                .map(|i| NodeSpec {
                    id: format!("n{i}"),
                    needs: Vec::new(),
                    action: Action::Run(Script::One("true".into())),
                    env: Default::default(),
                    secrets: Default::default(),
                    selector: Default::default(),
                    timeout_ms: None,
                    queue_timeout_ms: None,
                    retry: RetryPolicy::default(),
                    when: Default::default(),
                    resources: Vec::new(),
                    artifacts: Vec::new(),
                })
                .collect(),
        };
        let dag = Dag::compile(&workflow);
        Arc::new(Compiled {
            name: "w".into(),
            reqs: vec![1; nodes],
            workflow,
            dag,
        })
    }

    #[test]
    fn drops_least_recently_used_past_the_node_bound() {
        let mut cache = VersionCache::default();
        cache.insert("a", compiled(20_000));
        cache.insert("b", compiled(20_000));
        assert!(cache.get("a").is_some(), "a is now the most recently used");
        cache.insert("c", compiled(20_000));
        assert!(cache.get("b").is_none(), "b was the least recently used");
        assert!(cache.get("a").is_some());
        assert!(cache.get("c").is_some());
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn keeps_the_newest_even_when_it_alone_is_over_the_bound() {
        let mut cache = VersionCache::default();
        cache.insert("small", compiled(10));
        cache.insert("huge", compiled(MAX_NODES + 1));
        assert!(cache.get("huge").is_some());
        assert!(cache.get("small").is_none());
    }

    #[test]
    fn bounds_the_entry_count() {
        let mut cache = VersionCache::default();
        let one = compiled(1);
        for i in 0..MAX_ENTRIES + 10 {
            cache.insert(&format!("v{i}"), one.clone());
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
        assert!(cache.get("v0").is_none());
        assert!(cache.get(&format!("v{}", MAX_ENTRIES + 9)).is_some());
    }
}
