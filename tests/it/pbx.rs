//! ACL files rendered from sipwarden's lists (golden files) and applied to a copy of a
//! real Asterisk configuration with a fake `asterisk` that records what it is asked.

use std::path::{Path, PathBuf};

use sipwarden::asterisk::acl::{self, AclPlan, Tech};
use sipwarden::pbx::Pbx;

use crate::common::fixture;

fn golden(name: &str, actual: &str) {
    let path = fixture("../golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(actual, expected, "{} differs; UPDATE_GOLDEN=1 regenerates it", path.display());
}

fn plan() -> AclPlan {
    AclPlan {
        extension_networks: vec!["192.168.0.0/16".parse().unwrap(), "fd00:1::/64".parse().unwrap()],
        trunk_networks: [("itsp".to_string(), vec!["203.0.113.10/32".parse().unwrap()])].into(),
        always_deny: vec!["192.168.66.0/24".parse().unwrap()],
        extensions: vec![(Tech::Sip, "1001".into()), (Tech::Pjsip, "2001".into())],
        trunks: vec![(Tech::Sip, "itsp".into(), "itsp".into()), (Tech::Pjsip, "itsp".into(), "itsp".into())],
    }
}

/// A copy of the shared example configuration (it loaded on a real Asterisk 20),
/// plus a fake `asterisk` that logs its arguments and answers `acl show` from the
/// files (or, when `broken` exists, answers nothing, as when an include was refused).
pub fn config_dir() -> (tempfile::TempDir, Pbx, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("asterisk");
    std::fs::create_dir(&conf).unwrap();
    for f in ["acl.conf", "sip.conf", "pjsip.conf"] {
        std::fs::copy(fixture("example-acl").join(f), conf.join(f)).unwrap();
    }
    let calls = dir.path().join("calls.log");
    let fake = dir.path().join("asterisk-fake");
    std::fs::write(
        &fake,
        format!(
            r#"#!/usr/bin/env bash
echo "$*" >> '{calls}'
case "$2" in
  "acl show "*)
    [ -e '{broken}' ] && exit 0
    name="${{2#acl show }}"
    awk -v n="[$name]" '$0==n{{on=1; next}} /^\[/{{on=0}} on && /^permit=/{{sub("permit=",""); print "  1: allow - " $0}}' '{conf}/sipwarden_acl.conf'
    ;;
  "dialplan show "*) cat '{conf}/extensions_custom.conf' 2>/dev/null;;
  *) echo "Module reloaded.";;
esac
"#,
            calls = calls.display(),
            broken = dir.path().join("broken").display(),
            conf = conf.display()
        ),
    )
    .unwrap();
    std::process::Command::new("chmod").arg("+x").arg(&fake).status().unwrap();
    let pbx = Pbx { config_dir: conf, command: vec![fake.display().to_string()], log: None };
    (dir, pbx, calls)
}

fn file(pbx: &Pbx, name: &str) -> String {
    std::fs::read_to_string(pbx.config_dir.join(name)).unwrap_or_default()
}

#[test]
fn rendered_files_match_their_golden_copies() {
    let (_dir, pbx, _) = config_dir();
    let changes = pbx.preview(&plan()).unwrap();
    let by_name = |n: &str| changes.iter().find(|c| c.name == n).unwrap().after.clone();
    golden("acl-include.conf", &by_name(acl::ACL_INCLUDE));
    golden("sip_custom_post.conf", &by_name("sip_custom_post.conf"));
    golden("pjsip.endpoint_custom_post.conf", &by_name("pjsip.endpoint_custom_post.conf"));
    let include = by_name(acl::ACL_INCLUDE);
    for section in include.split("\n[").skip(1) {
        let lines: Vec<&str> = section.lines().collect();
        assert_eq!(&lines[1..3], &["deny=0.0.0.0/0.0.0.0", "deny=::/0"], "both families denied first");
    }
    // The example's peers already use other ACLs: sipwarden's are added, once.
    assert!(by_name("sip_custom_post.conf").contains("[1001](+)\nacl=sipwarden_extensions"));
}

#[test]
fn apply_previews_writes_reloads_verifies_and_keeps_backups() {
    let (_dir, pbx, calls) = config_dir();
    let changes = pbx.preview(&plan()).unwrap();
    let diff = changes.iter().find(|c| c.name == "acl.conf").unwrap().diff();
    assert!(diff.contains("+#include sipwarden_acl.conf"), "{diff}");
    let original_acl = file(&pbx, "acl.conf");
    let backups = pbx.apply(&plan(), &changes, "20261127-100000").unwrap();
    assert_eq!(backups.len(), 1, "only acl.conf existed before");
    assert_eq!(std::fs::read_to_string(&backups[0]).unwrap(), original_acl);
    assert!(file(&pbx, "acl.conf").ends_with("#include sipwarden_acl.conf\n"));
    let log = std::fs::read_to_string(&calls).unwrap();
    for expected in [
        "-rx module reload acl",
        "-rx sip reload",
        "-rx module reload res_pjsip.so",
        "-rx acl show sipwarden_extensions",
        "-rx acl show sipwarden_trunk_itsp",
    ] {
        assert!(log.contains(expected), "{expected} in {log}");
    }
    assert!(pbx.preview(&plan()).unwrap().is_empty(), "applied: nothing left to change");
}

#[test]
fn a_reload_that_does_not_take_is_rolled_back() {
    let (dir, pbx, calls) = config_dir();
    std::fs::write(dir.path().join("broken"), "").unwrap();
    let before: Vec<(String, String)> =
        ["acl.conf", "sip.conf", "pjsip.conf"].iter().map(|f| (f.to_string(), file(&pbx, f))).collect();
    let changes = pbx.preview(&plan()).unwrap();
    let err = pbx.apply(&plan(), &changes, "20261127-100001").unwrap_err().to_string();
    assert!(err.contains("does not list") && err.contains("restored"), "{err}");
    for (name, text) in before {
        assert_eq!(file(&pbx, &name), text, "{name} restored");
    }
    assert!(!Path::new(&pbx.config_dir.join("sipwarden_acl.conf")).exists(), "new files removed");
    let reloads = std::fs::read_to_string(&calls).unwrap().matches("module reload acl").count();
    assert_eq!(reloads, 2, "reloaded again after restoring");
}

#[test]
fn an_include_error_in_the_log_means_not_loaded_even_if_the_cli_says_reloaded() {
    let (dir, mut pbx, _) = config_dir();
    let log = dir.path().join("messages");
    std::fs::write(
        &log,
        "[Nov 27 10:00:00] NOTICE[1] chan_sip.c: old line was listed as a #include but it does not exist\n",
    )
    .unwrap();
    pbx.log = Some(log.clone());
    // The fake logs the error during the reload, as Asterisk does.
    let fake = std::path::PathBuf::from(&pbx.command[0]);
    let script = std::fs::read_to_string(&fake).unwrap().replace(
        "  *) echo \"Module reloaded.\";;",
        &format!("  *) echo \"[Nov 27 10:00:01] ERROR[2] config.c: The file 'sipwarden_acl.conf' was listed as a #include but it does not exist.\" >> '{}'; echo \"Module reloaded.\";;", log.display()),
    );
    std::fs::write(&fake, script).unwrap();
    let before = file(&pbx, "acl.conf");
    let changes = pbx.preview(&plan()).unwrap();
    let err = pbx.apply(&plan(), &changes, "20261127-100002").unwrap_err().to_string();
    assert!(err.contains("Asterisk logged") && err.contains("#include"), "{err}");
    assert_eq!(file(&pbx, "acl.conf"), before, "restored");
}

#[test]
fn links_planted_in_the_config_directory_never_redirect_a_write() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
    let (dir, pbx, _) = config_dir();
    let victim = dir.path().join("shadow");
    std::fs::write(&victim, "root:secret\n").unwrap();
    // The names the old code wrote through.
    for name in [".acl.conf.sipwarden-tmp", ".sip_custom_post.conf.sipwarden-tmp"] {
        symlink(&victim, pbx.config_dir.join(name)).unwrap();
    }
    let acl = pbx.config_dir.join("acl.conf");
    std::fs::set_permissions(&acl, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(&acl, Some(4242), Some(4343)).unwrap();
    let changes = pbx.preview(&plan()).unwrap();
    pbx.apply(&plan(), &changes, "20261202-100000").unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root:secret\n", "the link's target is untouched");
    assert!(file(&pbx, "sip_custom_post.conf").contains("[1001](+)"));
    // The rewritten file keeps its mode and owner, so Asterisk can still read it.
    let meta = std::fs::metadata(&acl).unwrap();
    assert_eq!((meta.mode() & 0o777, meta.uid(), meta.gid()), (0o640, 4242, 4343));

    // A link planted at the name of the next backup makes the apply fail; nothing followed.
    let backup = pbx.config_dir.join("acl.conf.sipwarden-20261202-100001.bak");
    symlink(&victim, &backup).unwrap();
    std::fs::write(&acl, "# changed by hand\n").unwrap();
    let changes = pbx.preview(&plan()).unwrap();
    assert!(pbx.apply(&plan(), &changes, "20261202-100001").is_err());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root:secret\n");
    assert_eq!(file(&pbx, "acl.conf"), "# changed by hand\n", "nothing written after a refused backup");

    // A file sipwarden writes that is itself a link is refused with a message: its
    // target would otherwise be read into a backup and, on a rollback, into the file.
    std::fs::remove_file(&backup).unwrap();
    let post = pbx.config_dir.join("sip_custom_post.conf");
    std::fs::remove_file(&post).unwrap();
    symlink(&victim, &post).unwrap();
    let err = pbx.preview(&plan()).unwrap_err().to_string();
    assert!(err.contains("sip_custom_post.conf") && err.contains("symbolic link"), "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root:secret\n");
}

/// FreePBX's file for the installation's own dialplan, as an admin left it.
const EXTENSIONS_CUSTOM: &str = "[from-internal-custom]\nexten => 1234,1,Playback(demo-congrats)\n";

#[test]
fn the_predial_hook_is_written_where_freepbx_reads_it_and_checked_after_the_reload() {
    let (_dir, pbx, calls) = config_dir();
    let path = pbx.config_dir.join("extensions_custom.conf");
    std::fs::write(&path, EXTENSIONS_CUSTOM).unwrap();
    let changes = pbx.preview(&plan()).unwrap();
    let hook = changes.iter().find(|c| c.name == "extensions_custom.conf").expect("the hook is offered");
    assert!(
        hook.diff().contains("+exten => s,1,GotoIf($[${DB_EXISTS(sipwarden-locked/${AMPUSER})}]?locked)")
    );
    pbx.apply(&plan(), &changes, "20261202-080000").unwrap();
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(written.starts_with(EXTENSIONS_CUSTOM), "the admin's own lines are kept: {written}");
    assert!(written.contains("[macro-dialout-trunk-predial-hook]\n"));
    let log = std::fs::read_to_string(&calls).unwrap();
    assert!(
        log.contains("-rx dialplan reload")
            && log.contains("-rx dialplan show macro-dialout-trunk-predial-hook")
    );
    assert!(pbx.preview(&plan()).unwrap().is_empty(), "applied: nothing left to change");
}

#[test]
fn an_admins_own_predial_hook_or_no_freepbx_file_means_no_hook_is_written() {
    let (_dir, pbx, calls) = config_dir();
    // Plain Asterisk: no extensions_custom.conf, nothing written, no dialplan reload.
    let changes = pbx.preview(&plan()).unwrap();
    assert!(!changes.iter().any(|c| c.name == "extensions_custom.conf"));
    pbx.apply(&plan(), &changes, "20261202-080001").unwrap();
    assert!(!std::fs::read_to_string(&calls).unwrap().contains("dialplan"));
    // The admin's hook stays the only one: two would clash.
    let own = format!(
        "{EXTENSIONS_CUSTOM}[macro-dialout-trunk-predial-hook]\nexten => s,1,Set(PREDIAL_HOOK_RET=)\n"
    );
    std::fs::write(pbx.config_dir.join("extensions_custom.conf"), &own).unwrap();
    assert!(pbx.preview(&plan()).unwrap().iter().all(|c| c.name != "extensions_custom.conf"));
}
