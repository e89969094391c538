//! No container engine runs here, so the Dockerfile, the systemd unit and the install
//! script are held to the facts of the code they package.

use std::path::Path;
use std::process::Command;

use crate::harness::Serve;

fn read(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(name)).unwrap()
}

#[tokio::test]
async fn the_dockerfile_matches_the_binary_port_health_path_and_paths() {
    let docker = read("Dockerfile");
    let binary =
        Path::new(env!("CARGO_BIN_EXE_sipwarden")).file_name().unwrap().to_str().unwrap().to_string();
    assert!(docker.contains(&format!("/src/target/release/{binary} /usr/local/bin/{binary}")));
    assert!(docker.contains(&format!("--bin {binary}")));
    assert!(docker.contains("cargo build --release --locked"), "built as CI builds: locked dependencies");
    let port = sipwarden::config::DEFAULT_LISTEN.rsplit(':').next().unwrap();
    assert!(docker.contains(&format!("EXPOSE {port}")));
    // With the host's network the panel answers on the PBX's loopback only, by default.
    assert!(docker.contains(&format!("SIPWARDEN_LISTEN=127.0.0.1:{port}")));
    let health = docker.lines().find(|l| l.starts_with("HEALTHCHECK")).unwrap();
    let url = health.split_whitespace().find(|w| w.starts_with("http://")).unwrap();
    assert_eq!(url, format!("http://127.0.0.1:{port}/healthz"));
    assert!(docker.contains("COPY sipwarden.example.toml /etc/sipwarden/sipwarden.toml"));
    assert!(docker.contains("SIPWARDEN_CONFIG=/etc/sipwarden/sipwarden.toml"));
    assert!(docker.contains("SIPWARDEN_DATA_DIR=/var/lib/sipwarden"));

    // The health path answers without a session, as the HEALTHCHECK needs.
    let dir = tempfile::tempdir().unwrap();
    crate::common::append(&dir.path().join("none.log"), "");
    let serve = Serve::dry_run(dir.path()).log(dir.path().join("none.log")).start();
    let r = serve.get("/healthz", None);
    // A dry run chosen on purpose: watching, not blocking.
    assert_eq!(r.status, 200, "GET /healthz answers without logging in: {}", r.body);
    assert!(r.body.contains("\"status\":\"monitor_only\""), "{}", r.body);
}

#[test]
fn the_unit_and_the_install_script_agree_on_paths_and_keep_an_existing_config() {
    let unit = read("packaging/sipwarden.service");
    assert!(unit.contains("ExecStart=/usr/local/bin/sipwarden serve"));
    assert!(unit.contains("SIPWARDEN_CONFIG=/etc/sipwarden/sipwarden.toml"));
    assert!(unit.contains("SIPWARDEN_DATA_DIR=/var/lib/sipwarden"));
    assert!(unit.contains("ReadWritePaths=/var/lib/sipwarden /etc/asterisk"), "Apply writes the ACL files");
    assert!(unit.contains("After=network-online.target asterisk.service freepbx.service"));
    assert!(unit.contains("CAP_DAC_OVERRIDE"), "root reads and writes asterisk-owned files");

    let root = tempfile::tempdir().unwrap();
    let install = |root: &Path| {
        let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/install.sh"))
            .args(["--root"])
            .arg(root)
            .args(["--binary", env!("CARGO_BIN_EXE_sipwarden")])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    install(root.path());
    for path in [
        "usr/local/bin/sipwarden",
        "etc/systemd/system/sipwarden.service",
        "etc/sipwarden/sipwarden.toml",
        "var/lib/sipwarden",
    ] {
        assert!(root.path().join(path).exists(), "{path}");
    }
    let config = root.path().join("etc/sipwarden/sipwarden.toml");
    let installed = std::fs::read_to_string(&config).unwrap();
    assert!(installed.contains("\ndata_dir = \"/var/lib/sipwarden\""), "the service's data directory");
    std::fs::write(&config, "# edited by the admin\n").unwrap();
    let said = install(root.path());
    assert!(said.contains("kept the existing"));
    assert_eq!(std::fs::read_to_string(&config).unwrap(), "# edited by the admin\n");
    // The installed example config is one the binary accepts (against the database
    // `serve` would have created).
    let data = root.path().join("var/lib/sipwarden");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        sipwarden::store::Store::open(&data.join("sipwarden.db")).await.unwrap().close().await
    });
    let out = Command::new(root.path().join("usr/local/bin/sipwarden"))
        .args(["--config"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("sipwarden.example.toml"))
        .args(["--data-dir"])
        .arg(root.path().join("var/lib/sipwarden"))
        .args(["--firewall", "dry-run", "status"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Uninstalling keeps the configuration and the evidence; purging removes them.
    let uninstall = |extra: &[&str]| {
        let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/install.sh"))
            .args(["--root"])
            .arg(root.path())
            .arg("--uninstall")
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let said = uninstall(&[]);
    assert!(!root.path().join("usr/local/bin/sipwarden").exists());
    assert!(!root.path().join("etc/systemd/system/sipwarden.service").exists());
    assert!(config.exists() && data.join("sipwarden.db").exists(), "{said}");
    assert!(said.contains("--purge removes them") && said.contains("sipwarden_acl.conf"), "{said}");
    uninstall(&["--purge"]);
    assert!(!config.exists() && !data.exists());
}
