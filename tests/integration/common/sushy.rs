//! A sushy-emulator (PyPI sushy-tools, fake driver) on 127.0.0.1 for one test: HTTPS with a
//! certificate from a CA the test generates, Basic auth from a bcrypt htpasswd file, its state
//! in the test's own directory. Stopped by PID when dropped.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Sushy {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub system_url: String,
    child: Child,
}

pub const USER: &str = "admin";
pub const SYSTEM_UUID: &str = "4a7c5b0e-0d4c-4c39-9b0c-6d1b5f0f6a11";

fn tool(var: &str) -> String {
    std::env::var(var)
        .unwrap_or_else(|_| panic!("${var} is not set: run the tests through scripts/test.sh, which installs sushy-tools in a venv"))
}

impl Sushy {
    pub fn start() -> Sushy {
        let dir = tempfile::Builder::new().prefix("fleetboot-sushy-").tempdir().unwrap();
        let pki = fleetboot_sim::bmc::Pki::generate(&["127.0.0.1".parse().unwrap()]).unwrap();
        std::fs::write(dir.path().join("ca.pem"), &pki.ca_pem).unwrap();
        std::fs::write(dir.path().join("cert.pem"), &pki.cert_pem).unwrap();
        std::fs::write(dir.path().join("key.pem"), &pki.key_pem).unwrap();
        let password = uuid::Uuid::new_v4().simple().to_string();
        let password_file = dir.path().join("password");
        std::fs::write(&password_file, &password).unwrap();
        std::fs::set_permissions(&password_file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let hash = Command::new(tool("SUSHY_PYTHON"))
            .args(["-c", "import bcrypt, sys; print(bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt(4)).decode())", &password])
            .output()
            .unwrap();
        assert!(hash.status.success(), "bcrypt: {}", String::from_utf8_lossy(&hash.stderr));
        std::fs::write(dir.path().join("htpasswd"), format!("{USER}:{}", String::from_utf8_lossy(&hash.stdout).trim())).unwrap();
        std::fs::create_dir(dir.path().join("state")).unwrap();
        let port = super::free_port();
        let p = |name: &str| dir.path().join(name).display().to_string();
        std::fs::write(
            dir.path().join("sushy.conf"),
            format!(
                "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\nSUSHY_EMULATOR_LISTEN_PORT = {port}\n\
                 SUSHY_EMULATOR_SSL_CERT = '{cert}'\nSUSHY_EMULATOR_SSL_KEY = '{key}'\n\
                 SUSHY_EMULATOR_AUTH_FILE = '{auth}'\nSUSHY_EMULATOR_STATE_DIR = '{state}'\n\
                 SUSHY_EMULATOR_FAKE_DRIVER = True\n\
                 SUSHY_EMULATOR_FAKE_SYSTEMS = [{{'uuid': '{SYSTEM_UUID}', 'name': 'node-a', 'power_state': 'On', \
                 'nics': [{{'mac': '52:54:00:00:00:01', 'ip': '127.0.0.1'}}]}}]\n",
                cert = p("cert.pem"),
                key = p("key.pem"),
                auth = p("htpasswd"),
                state = p("state"),
            ),
        )
        .unwrap();
        let child = Command::new(tool("SUSHY_EMULATOR"))
            .args(["--config", &p("sushy.conf")])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("sushy.log")).unwrap())
            .spawn()
            .unwrap();
        let url = format!("https://127.0.0.1:{port}");
        let sushy = Sushy { system_url: format!("{url}/redfish/v1/Systems/{SYSTEM_UUID}"), url, dir, child };
        sushy.wait_ready();
        sushy
    }

    fn wait_ready(&self) {
        let start = Instant::now();
        loop {
            let ok = Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", self.path("ca.pem").to_str().unwrap()])
                .arg(format!("{}/redfish/v1", self.url))
                .output()
                .is_ok_and(|o| o.stdout == b"200");
            if ok {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "sushy-emulator did not come up: {}",
                std::fs::read_to_string(self.path("sushy.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn password(&self) -> String {
        std::fs::read_to_string(self.path("password")).unwrap()
    }
}

impl Drop for Sushy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
