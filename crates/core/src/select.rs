//! Which agent may run which node: labels and functions.

use std::collections::BTreeMap;

/// What a node asks of an agent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Requirement {
    /// The function the agent must implement (`shell` for `run:`).
    pub function: String,
    /// Labels the agent must carry, every one of them with the same value.
    pub selector: BTreeMap<String, String>,
}

impl Requirement {
    /// True when an agent with these labels and functions may claim the node.
    pub fn is_met_by(&self, labels: &BTreeMap<String, String>, functions: &[String]) -> bool {
        functions.iter().any(|f| f == &self.function)
            && self.selector.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// Says, for people, what no agent in `agents` offers of `req` (`None` when one agent meets it).
///
/// Each agent is `(labels, functions)`.
pub fn missing_requirements<'a, I>(req: &Requirement, agents: I) -> Option<String>
where
    I: IntoIterator<Item = (&'a BTreeMap<String, String>, &'a [String])>,
{
    let mut any_function = false;
    let mut label_gaps: Vec<String> = Vec::new();
    for (labels, functions) in agents {
        if req.is_met_by(labels, functions) {
            return None;
        }
        if functions.iter().any(|f| f == &req.function) {
            any_function = true;
        }
    }
    if !any_function {
        return Some(format!(
            "no online agent implements function {:?}",
            req.function
        ));
    }
    for (k, v) in &req.selector {
        label_gaps.push(format!("{k}={v}"));
    }
    Some(format!(
        "no online agent implementing {:?} has all of the labels {}",
        req.function,
        label_gaps.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn needs_function_and_every_label() {
        let req = Requirement {
            function: "shell".into(),
            selector: labels(&[("os", "linux"), ("gpu", "yes")]),
        };
        let shell = vec!["shell".to_string()];
        assert!(req.is_met_by(
            &labels(&[("os", "linux"), ("gpu", "yes"), ("x", "y")]),
            &shell
        ));
        assert!(!req.is_met_by(&labels(&[("os", "linux")]), &shell));
        assert!(!req.is_met_by(&labels(&[("os", "linux"), ("gpu", "yes")]), &[]));
    }

    #[test]
    fn explains_what_nobody_offers() {
        let req = Requirement {
            function: "terraform-plan".into(),
            selector: BTreeMap::new(),
        };
        let l = labels(&[]);
        let f = vec!["shell".to_string()];
        let msg = missing_requirements(&req, [(&l, f.as_slice())]).unwrap();
        assert!(msg.contains("terraform-plan"), "{msg}");
    }
}
