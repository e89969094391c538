//! fail2ban's own annotated sample for its asterisk filter (Debian's `fail2ban`
//! package, `tests/files/logs/asterisk`): every line it says fails is read with the
//! host it names, and nothing else is. The sample ships with fail2ban and is not
//! copied here: `tests/run-all.sh` unpacks the package when it is missing.

use std::path::PathBuf;

use sipwarden::asterisk::read_text;

const INSTALLED: &str = "/usr/lib/python3/dist-packages/fail2ban/tests/files/logs/asterisk";

fn sample() -> Option<PathBuf> {
    let unpacked = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/fail2ban/usr/lib/python3/dist-packages/fail2ban/tests/files/logs/asterisk");
    std::env::var_os("SIPWARDEN_FAIL2BAN_SAMPLE")
        .map(PathBuf::from)
        .into_iter()
        .chain([unpacked, PathBuf::from(INSTALLED)])
        .find(|p| p.is_file())
}

/// (line, expected host) for each annotated line, with the prefix a `filterOptions`
/// line asks for.
fn annotated(text: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut expected: Option<Option<String>> = None;
    let mut prefix = String::new();
    for line in text.lines() {
        if let Some(json) = line.strip_prefix("# failJSON: ") {
            let v: serde_json::Value = serde_json::from_str(json).unwrap();
            let host = v["host"].as_str().map(str::to_owned).filter(|_| v["match"] == true);
            expected = Some(host);
        } else if let Some(json) = line.strip_prefix("# filterOptions: ") {
            let v: serde_json::Value = serde_json::from_str(json).unwrap();
            prefix = v[0]["test.prefix-line"].as_str().unwrap_or("").to_owned();
        } else if line.starts_with('#') || line.trim().is_empty() {
            continue;
        } else if let Some(host) = expected.take() {
            out.push((format!("{prefix}{line}"), host));
        }
    }
    out
}

#[test]
fn every_line_fail2ban_annotates_is_read_with_its_host() {
    let Some(path) = sample() else {
        // Fails under CI=true; elsewhere says it skips.
        crate::common::runnable(
            "the fail2ban sample test",
            &[("fail2ban's sample (tests/run-all.sh unpacks it)", false)],
        );
        return;
    };
    let lines = annotated(&std::fs::read_to_string(&path).unwrap());
    assert_eq!(lines.len(), 46, "the sample changed: {}", path.display());
    let mut missed = Vec::new();
    for (line, host) in &lines {
        let got: Vec<String> = read_text(line, 1_795_554_600_000)
            .into_iter()
            .filter_map(|r| r.event)
            .filter(|e| e.is_failure())
            .filter_map(|e| e.ip.map(|ip| ip.to_string()))
            .collect();
        let want: Vec<String> = host.iter().cloned().collect();
        if got != want {
            missed.push(format!("{line}\n   want {want:?}, got {got:?}"));
        }
    }
    assert!(missed.is_empty(), "{} of {} lines misread:\n{}", missed.len(), lines.len(), missed.join("\n"));
}
