//! Every `brig` command a user would type in README.md and docs/*.md must
//! parse with the current CLI, so the documentation cannot drift from the
//! code. (The install command's sample job runs for real in CI: test.sh runs
//! ./install.sh, which runs scripts/demo.sh.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

/// Command lines in ```sh / ```console / ```bash blocks that invoke brig.
fn documented_commands(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_block = false;
    let mut continued = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("```") {
            in_block = !in_block && ["```sh", "```console", "```bash", "```shell"].iter().any(|f| t.starts_with(f));
            continued.clear();
            continue;
        }
        if !in_block {
            continue;
        }
        let mut l = t.trim_start_matches("$ ").trim_start_matches("sudo ").to_string();
        if !continued.is_empty() {
            l = format!("{continued} {l}");
            continued.clear();
        }
        if let Some(stripped) = l.strip_suffix('\\') {
            continued = stripped.to_string();
            continue;
        }
        // One command per line; stop at comments, pipes and redirections.
        let l = l
            .split(" #")
            .next()
            .unwrap_or("")
            .split(" | ")
            .next()
            .unwrap_or("")
            .split(" > ")
            .next()
            .unwrap_or("")
            .to_string();
        if l.starts_with("brig ") || l == "brig" {
            out.push(l);
        }
    }
    out
}

#[test]
fn every_documented_brig_command_parses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut files = vec![root.join("README.md")];
    for e in std::fs::read_dir(root.join("docs")).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "md") {
            files.push(e.path());
        }
    }
    let mut checked = 0;
    let mut failures = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for cmd in documented_commands(&text) {
            // Shell substitutions become plain words.
            let cmd = regex_lite_replace(&cmd);
            let words = match shell_words::split(&cmd) {
                Ok(w) => w,
                Err(e) => {
                    failures.push(format!("{}: `{cmd}`: {e}", f.display()));
                    continue;
                }
            };
            let out = std::process::Command::new(brig_tests::brig_bin())
                .args(&words[1..])
                .env("BRIG_PARSE_ONLY", "1")
                .output()
                .unwrap();
            checked += 1;
            if !out.status.success() {
                failures.push(format!("{}: `{cmd}`:\n{}", f.display(), String::from_utf8_lossy(&out.stderr)));
            }
        }
    }
    assert!(checked >= 20, "only {checked} documented commands found");
    assert!(failures.is_empty(), "{} documented command(s) do not parse:\n{}", failures.len(), failures.join("\n"));
}

/// Replaces `$(...)` and `$VAR` with a placeholder word.
fn regex_lite_replace(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' {
            if chars.peek() == Some(&'(') {
                let mut depth = 0;
                for d in chars.by_ref() {
                    if d == '(' {
                        depth += 1;
                    } else if d == ')' {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                }
                out.push_str("VALUE");
                continue;
            }
            while chars.peek().is_some_and(|d| d.is_ascii_alphanumeric() || *d == '_' || *d == '{' || *d == '}') {
                chars.next();
            }
            out.push_str("VALUE");
            continue;
        }
        out.push(c);
    }
    out
}

#[test]
fn the_extractor_finds_commands() {
    let md = "text\n```sh\n$ sudo brig run --bundle DIR id   # comment\nbrig ps $(cat id) | head\nbrig attest verify E \\\n  --key K\n```\n```toml\nbrig = 1\n```\n";
    let cmds = documented_commands(md);
    assert_eq!(cmds, vec!["brig run --bundle DIR id  ", "brig ps $(cat id)", "brig attest verify E  --key K"]);
}
