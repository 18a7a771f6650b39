//! fleetboot's Redfish client against sushy-emulator (PyPI sushy-tools, fake driver): HTTPS
//! verified with the test's own CA, Basic auth (sushy has no SessionService), the reset types
//! and the PowerState transitions of its fake driver (which land after a random 1-11 s).

use std::time::{Duration, Instant};

use crate::common::Run;
use crate::common::sushy::{Sushy, USER};
use fleetboot::adapters::redfish::{Bmc, BmcTarget, BmcTls, RedfishError, RedfishSettings, RestartKind, Secret};

fn power(sushy: &Sushy, args: &[&str], tls: &[&str]) -> Run {
    let out = std::process::Command::new(crate::common::fleetboot_bin())
        .arg("power")
        .args(args)
        .args(["--bmc", &sushy.system_url, "--bmc-user", USER, "--bmc-password-file", sushy.path("password").to_str().unwrap()])
        .args(tls)
        .env("HOME", sushy.dir.path())
        .output()
        .unwrap();
    Run::from(out)
}

fn verified(sushy: &Sushy) -> Vec<String> {
    vec!["--bmc-ca".into(), sushy.path("ca.pem").display().to_string()]
}

fn client(sushy: &Sushy, password: &str, tls: BmcTls) -> Bmc {
    let target =
        BmcTarget { node: "node-a".into(), url: sushy.system_url.clone(), username: USER.into(), password: Secret::new(password), tls };
    let settings = RedfishSettings {
        request_timeout: Duration::from_secs(10),
        operation_timeout: Duration::from_secs(20),
        busy_retries: 2,
        retry_wait: Duration::from_millis(200),
    };
    Bmc::new(target, settings).unwrap()
}

/// Polls PowerState until `state`, returning every state seen on the way.
async fn follow_until(bmc: &Bmc, state: &str, limit: Duration) -> Vec<String> {
    let start = Instant::now();
    let mut seen: Vec<String> = Vec::new();
    loop {
        let now = bmc.system().await.unwrap().power_state;
        if seen.last() != Some(&now) {
            seen.push(now.clone());
        }
        if now == state {
            return seen;
        }
        assert!(start.elapsed() < limit, "PowerState never reached {state}: {seen:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn status_over_verified_tls_and_clear_errors_for_a_wrong_ca_and_bad_credentials() {
    let sushy = Sushy::start();
    let tls = verified(&sushy);
    let tls: Vec<&str> = tls.iter().map(String::as_str).collect();
    let run = power(&sushy, &["status", "-o", "json"], &tls);
    assert_eq!(run.code, 0, "{}", run.debug());
    let status: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(status[0]["power_state"], "On");
    let allowed = status[0]["allowed_resets"].as_array().unwrap();
    assert!(allowed.iter().any(|a| a == "GracefulRestart") && allowed.iter().any(|a| a == "ForceRestart"), "{allowed:?}");

    // A CA that did not sign sushy's certificate.
    let other = fleetboot_sim::bmc::Pki::generate(&["127.0.0.1".parse().unwrap()]).unwrap();
    std::fs::write(sushy.path("other-ca.pem"), other.ca_pem).unwrap();
    let run = power(&sushy, &["status"], &["--bmc-ca", sushy.path("other-ca.pem").to_str().unwrap()]);
    assert_eq!(run.code, 3, "{}", run.debug());
    assert!(run.stdout.contains("certificate is not trusted"), "{}", run.debug());

    // --bmc-insecure works, loudly.
    let run = power(&sushy, &["status"], &["--bmc-insecure"]);
    assert_eq!(run.code, 0, "{}", run.debug());
    assert!(run.stderr.contains("WARNING") && run.stderr.contains("not verified"), "{}", run.debug());

    runtime().block_on(async {
        let wrong = client(&sushy, "not-the-password", BmcTls::Verify { ca_file: Some(sushy.path("ca.pem")) });
        let err = wrong.login().await.unwrap_err();
        assert!(matches!(err, RedfishError::Auth { .. }), "{err}");
        assert!(
            err.to_string().contains("refused the credentials of user \"admin\"") && !err.to_string().contains("not-the-password"),
            "{err}"
        );
    });
    assert!(!run.stdout.contains(&sushy.password()) && !run.stderr.contains(&sushy.password()));
}

#[test]
fn graceful_and_forced_restarts_go_off_then_on_and_a_rejected_reset_type_says_why() {
    let sushy = Sushy::start();
    runtime().block_on(async {
        let bmc = client(&sushy, &sushy.password(), BmcTls::Verify { ca_file: Some(sushy.path("ca.pem")) });
        bmc.login().await.unwrap();
        assert_eq!(bmc.system().await.unwrap().power_state, "On");

        assert_eq!(bmc.restart(RestartKind::Graceful, false).await.unwrap(), "GracefulRestart");
        // The fake driver reports Off at once and On again after its random 1-11 s.
        let seen = follow_until(&bmc, "On", Duration::from_secs(15)).await;
        assert_eq!(seen, ["Off", "On"], "GracefulRestart transitions");

        assert_eq!(bmc.restart(RestartKind::Force, false).await.unwrap(), "ForceRestart");
        let seen = follow_until(&bmc, "On", Duration::from_secs(15)).await;
        assert_eq!(seen, ["Off", "On"], "ForceRestart transitions");

        // Not advertised: refused before anything is sent.
        let err = bmc.power("PowerCycle").await.unwrap_err();
        assert!(
            matches!(err, RedfishError::ResetNotAllowed { .. }) && err.to_string().contains("does not allow ResetType PowerCycle"),
            "{err}"
        );
        // Advertised, but the fake driver refuses it: the BMC's own answer comes through.
        let err = bmc.power("Nmi").await.unwrap_err();
        match &err {
            RedfishError::Http { status, .. } => assert!(*status >= 400, "{err}"),
            other => panic!("expected an HTTP error, got {other}"),
        }
        assert_eq!(bmc.system().await.unwrap().power_state, "On");
        bmc.logout().await;
    });
}

#[test]
fn power_off_and_on_wait_for_the_power_state_and_need_confirmation() {
    let sushy = Sushy::start();
    let tls = verified(&sushy);
    let tls: Vec<&str> = tls.iter().map(String::as_str).collect();
    let run = power(&sushy, &["off"], &tls);
    assert_eq!(run.code, 2, "{}", run.debug());
    assert!(run.stderr.contains("--yes-power-off"));

    let run = power(&sushy, &["off", "--yes-power-off", "-o", "json"], &tls);
    assert_eq!(run.code, 0, "{}", run.debug());
    let result: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!((result[0]["action"].as_str(), result[0]["power_state"].as_str()), (Some("ForceOff"), Some("Off")), "{result}");

    let run = power(&sushy, &["on", "--yes-power-on", "-o", "json"], &tls);
    assert_eq!(run.code, 0, "{}", run.debug());
    let result: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(result[0]["power_state"], "On", "{result}");
}
