//! Every seed configuration fixture loads with zero errors and renders to a fixpoint.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

fn fixtures() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cfg"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_fixture_loads_without_errors_and_renders_to_a_fixpoint() {
    let files = fixtures();
    assert!(
        !files.is_empty(),
        "no *.cfg fixtures found in tests/fixtures"
    );
    let mut failures = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let p = lifeline_config::parse(&text);
        let name = f.file_name().unwrap().to_string_lossy();
        let errors: Vec<_> = p.diagnostics.iter().filter(|d| d.is_error()).collect();
        let warnings = p.diagnostics.len() - errors.len();
        println!("{name}: {} error(s), {warnings} warning(s)", errors.len());
        if std::env::var_os("LIFELINE_CONFIG_VERBOSE").is_some() {
            for w in p.warnings() {
                println!("  {name}:{w}");
            }
        }
        for e in &errors {
            failures.push(format!("{name}:{e}"));
        }
        let once = lifeline_config::render(&p.config);
        let again = lifeline_config::parse(&once);
        let twice = lifeline_config::render(&again.config);
        if once != twice {
            failures.push(format!(
                "{name}: rendering is not a fixpoint\n--- first\n{once}\n--- second\n{twice}"
            ));
        }
        if again.has_errors() {
            failures.push(format!(
                "{name}: the rendering has errors: {:?}",
                again.diagnostics
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Seed defects (`defects/`), fuzzer reproducers (`fuzz-regressions/`) and task-step snippets
/// (`snippets/`): never panic, the rendering is a fixpoint, and a configuration without errors
/// renders to one without errors.
#[test]
fn defect_originals_and_fuzz_reproducers_render_to_a_fixpoint() {
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let mut n = 0;
    for sub in ["defects", "fuzz-regressions", "snippets"] {
        let Ok(rd) = std::fs::read_dir(base.join(sub)) else {
            continue;
        };
        for e in rd {
            let path = e.unwrap().path();
            if path.extension().is_none_or(|x| x != "cfg") {
                continue;
            }
            n += 1;
            let bytes = std::fs::read(&path).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            let p = lifeline_config::parse(&text);
            let once = lifeline_config::render(&p.config);
            let again = lifeline_config::parse(&once);
            if !p.has_errors() {
                assert!(
                    !again.has_errors(),
                    "{}: {:?}",
                    path.display(),
                    again.diagnostics
                );
            }
            assert_eq!(
                once,
                lifeline_config::render(&again.config),
                "{}",
                path.display()
            );
        }
    }
    println!("{n} defect/fuzz files");
}
