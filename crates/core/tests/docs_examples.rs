//! Every workflow shown in the README and the format reference is a valid workflow: the
//! examples people copy must parse as they are written.

use std::path::Path;

/// Put on the line before a block that shows a broken workflow on purpose.
const INVALID_MARK: &str = "<!-- an invalid workflow, on purpose -->";

/// YAML blocks of a markdown file that hold a whole workflow (a `name:` and a `nodes:` line),
/// except those marked invalid on purpose.
fn workflow_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut block: Option<(usize, String)> = None;
    let mut previous = "";
    for (i, line) in markdown.lines().enumerate() {
        match &mut block {
            None if line.trim_start() == "```yaml" && previous.trim() != INVALID_MARK => {
                block = Some((i + 2, String::new()))
            }
            None => {}
            Some(_) if line.trim_start() == "```" => {
                let (at, text) = block.take().expect("inside a block");
                let whole = text.lines().any(|l| l.starts_with("name:"))
                    && text.lines().any(|l| l.starts_with("nodes:"));
                if whole {
                    out.push((at, text));
                }
            }
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
        }
        previous = line;
    }
    out
}

fn check(file: &str) -> usize {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(file);
    let markdown = std::fs::read_to_string(&path).expect("the document exists");
    let blocks = workflow_blocks(&markdown);
    for (line, text) in &blocks {
        if let Err(diags) = baton_core::parse_workflow(file, text.as_bytes()) {
            panic!("{file}: the workflow at line {line} is refused:\n{diags}");
        }
    }
    blocks.len()
}

#[test]
fn readme_workflows_are_valid() {
    assert!(check("README.md") >= 1, "the README shows a workflow");
}

#[test]
fn format_reference_workflows_are_valid() {
    assert!(
        check("docs/workflow-format.md") >= 2,
        "the reference shows workflows"
    );
}

#[test]
fn only_whole_workflows_are_picked() {
    let md = "```yaml\nname: a\nnodes:\n  x: {run: 'true'}\n```\n```yaml\nwhen: all_done\n```\n\
              <!-- an invalid workflow, on purpose -->\n```yaml\nname: B\nnodes:\n```\n";
    let blocks = workflow_blocks(md);
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].0, 2);
}
