//! The README's examples are true: every `cargo run --release -- run ...` command in one of its
//! code blocks is run, and must end with the verdict that block shows (`verdict: WORD`, PASS
//! if it shows none) and fire every invariant the block's `violation: [name]` lines name.

use std::process::Command;

/// One example: the `paylab run` arguments, the verdict shown and the invariants named.
#[derive(Debug)]
struct Example {
    args: Vec<String>,
    verdict: String,
    invariants: Vec<String>,
}

/// The examples of every fenced code block of `text`.
fn examples(text: &str) -> Vec<Example> {
    let mut found = Vec::new();
    for block in text.split("```").skip(1).step_by(2) {
        let verdict = block
            .lines()
            .find_map(|l| l.trim().strip_prefix("verdict: "))
            .map_or("PASS".to_string(), |v| {
                v.split_whitespace().next().unwrap_or("").to_string()
            });
        let invariants: Vec<String> = block
            .lines()
            .filter_map(|l| l.trim().strip_prefix("violation: ["))
            .filter_map(|l| l.split(']').next())
            .map(str::to_string)
            .collect();
        for line in block.lines() {
            let Some((_, rest)) = line.split_once("cargo run --release -- run ") else {
                continue;
            };
            let command = rest.split(" #").next().unwrap_or("");
            found.push(Example {
                args: command.split_whitespace().map(str::to_string).collect(),
                verdict: verdict.clone(),
                invariants: invariants.clone(),
            });
        }
    }
    found
}

#[test]
fn the_readme_examples_end_as_the_readme_says() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("the README");
    let examples = examples(&readme);
    assert!(
        examples.len() >= 2,
        "the README shows a passing and a failing run: {examples:?}"
    );
    assert!(
        examples.iter().any(|e| e.verdict != "PASS"),
        "a failing example is shown"
    );
    let reports = std::env::temp_dir().join(format!("paylab-readme-{}", std::process::id()));
    for e in examples {
        let out = Command::new(env!("CARGO_BIN_EXE_paylab"))
            .arg("run")
            .args(&e.args)
            .args(["--report-dir", reports.to_str().unwrap()])
            .output()
            .expect("paylab runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(&format!("verdict: {}", e.verdict)),
            "the README says {e:?} ends {}, but it printed:\n{stdout}",
            e.verdict
        );
        for name in &e.invariants {
            assert!(
                stdout.contains(&format!("violation: [{name}]")),
                "{e:?}: {stdout}"
            );
        }
    }
    std::fs::remove_dir_all(&reports).ok();
}

#[test]
fn examples_are_read_from_code_blocks_with_their_verdicts() {
    let text = "x `cargo run --release -- run --seed 9`\n```sh\ncargo run --release -- run --seed 7   # passes\n```\nprose\n```\nviolation: [exactly-once] request c1\nverdict: VIOLATION\nrepro: cargo run --release -- run --seed 1 --bug b\n```\n";
    let e = examples(text);
    assert_eq!(
        e.len(),
        2,
        "inline code outside blocks is not an example: {e:?}"
    );
    assert_eq!(
        (e[0].args.clone(), e[0].verdict.as_str()),
        (vec!["--seed".to_string(), "7".to_string()], "PASS")
    );
    assert_eq!(e[1].verdict, "VIOLATION");
    assert_eq!(e[1].invariants, ["exactly-once"]);
    assert_eq!(e[1].args, ["--seed", "1", "--bug", "b"]);
}
