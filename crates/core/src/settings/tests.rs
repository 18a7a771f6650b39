use super::*;

fn all_set(concurrency: usize, transport: Transport, context: &str) -> Partial {
    Partial {
        concurrency: Some(concurrency),
        group_concurrency: Some(concurrency),
        max_failures: Some(FailureBudget::Count(concurrency)),
        timeout: Some(Duration::from_secs(concurrency as u64)),
        poll_interval: Some(Duration::from_millis(concurrency as u64)),
        connect_timeout: Some(Duration::from_secs(100 + concurrency as u64)),
        kubeconfig: Some(format!("{context}.kubeconfig")),
        transport: Some(transport),
        host_key_policy: Some(HostKeyPolicy::AcceptNew),
        output: Some(OutputFormat::Json),
        context: Some(context.to_owned()),
        ..Partial::default()
    }
}

#[test]
fn each_field_takes_the_flag_then_the_environment_then_the_file_then_the_default() {
    let flags = all_set(4, Transport::Ssh, "flag");
    let env = all_set(3, Transport::Redfish, "env");
    let file = all_set(2, Transport::Auto, "file");
    let defaults = Settings::default();
    let everything = merge(&flags, &env, &file, &defaults);
    assert_eq!((everything.concurrency, everything.transport, everything.context.as_deref()), (4, Transport::Ssh, Some("flag")));
    assert_eq!(everything.timeout, Duration::from_secs(4));

    let none = Partial::default();
    let no_flag = merge(&none, &env, &file, &defaults);
    assert_eq!((no_flag.concurrency, no_flag.transport, no_flag.context.as_deref()), (3, Transport::Redfish, Some("env")));
    let file_only = merge(&none, &none, &file, &defaults);
    assert_eq!((file_only.concurrency, file_only.group_concurrency, file_only.context.as_deref()), (2, Some(2), Some("file")));
    assert_eq!(merge(&none, &none, &none, &defaults), defaults);
}

#[test]
fn precedence_is_decided_per_field_not_per_source() {
    let flags = Partial { concurrency: Some(9), ..Partial::default() };
    let env = Partial { output: Some(OutputFormat::Plain), ..Partial::default() };
    let file =
        Partial { concurrency: Some(2), transport: Some(Transport::Redfish), output: Some(OutputFormat::Json), ..Partial::default() };
    let s = merge(&flags, &env, &file, &Settings::default());
    assert_eq!(s.concurrency, 9, "the flag beats the file");
    assert_eq!(s.output, OutputFormat::Plain, "the environment beats the file");
    assert_eq!(s.transport, Transport::Redfish, "the file beats the default");
    assert_eq!(s.ssh.host_key_policy, HostKeyPolicy::Strict, "the default when nobody says");
}

fn text(pairs: &[(&str, &str)]) -> Vec<(String, Value)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), Value::Text((*v).to_owned()))).collect()
}

#[test]
fn a_bad_value_in_the_file_names_the_file_and_the_key() {
    let file = Origin::File("/etc/fleetboot.toml".into());
    let err = Partial::from_file(text(&[("reboot.concurrency", "4"), ("reboot.transport", "telnet")]), &file).unwrap_err();
    assert_eq!(err.key, "reboot.transport");
    let message = err.to_string();
    assert!(message.starts_with("/etc/fleetboot.toml: `reboot.transport`: "), "{message}");
    assert!(message.contains("auto, ssh, redfish") && message.contains("telnet"), "{message}");

    let zero = Partial::from_file(text(&[("reboot.parallel", "0")]), &Origin::File("site.toml".into())).unwrap_err();
    assert_eq!(zero.to_string(), "site.toml: `reboot.parallel`: a limit of 0 reboots nothing; use at least 1");
    let list = Partial::from_file(text(&[("ssh.identities", "~/.ssh/id")]), &file).unwrap_err().to_string();
    assert!(list.contains("expected a list"), "{list}");
    let late = Partial::from_env([("FLEETBOOT_TIMEOUT", "soon")]).unwrap_err();
    assert!(late.to_string().starts_with("environment variable FLEETBOOT_TIMEOUT: "), "{late}");
}

#[test]
fn the_file_refuses_unknown_keys_naming_the_ones_its_section_has() {
    let file = Origin::File("my.toml".into());
    let err = Partial::from_file(text(&[("reboot.concurency", "3")]), &file).unwrap_err().to_string();
    assert!(err.starts_with("my.toml: `reboot.concurency`: unknown key; [reboot] has "), "{err}");
    assert!(err.contains("concurrency") && err.contains("poll_interval"), "{err}");
    // group-concurrency is the environment's and the flag's only.
    assert!(Partial::from_file(text(&[("reboot.group_concurrency", "3")]), &file).is_err());
    let p =
        Partial::from_file(text(&[("reboot.concurrency", "3"), ("ssh.host_key_policy", "accept-new"), ("output.format", "json")]), &file)
            .unwrap();
    assert_eq!((p.concurrency, p.host_key_policy, p.output), (Some(3), Some(HostKeyPolicy::AcceptNew), Some(OutputFormat::Json)));
}

#[test]
fn every_file_key_and_variable_is_spelled_once() {
    let mut files: Vec<&str> = KEYS.iter().filter_map(|k| k.file).collect();
    let mut envs: Vec<&str> = keys::env_keys().collect();
    let (n, m) = (files.len(), envs.len());
    files.sort_unstable();
    files.dedup();
    envs.sort_unstable();
    envs.dedup();
    assert_eq!((files.len(), envs.len()), (n, m), "a key listed twice");
    assert_eq!(keys::file_sections().collect::<Vec<_>>(), ["ssh", "reboot", "transport", "output", "cluster", "batch"]);
}

#[test]
fn the_environment_fills_its_layer_by_name() {
    let p =
        Partial::from_env([("FLEETBOOT_CONCURRENCY", "5"), ("FLEETBOOT_TRANSPORT", "ssh"), ("HOME", "/root"), ("FLEETBOOT_UNKNOWN", "x")])
            .unwrap();
    assert_eq!((p.concurrency, p.transport, p.output), (Some(5), Some(Transport::Ssh), None));
}

#[test]
fn every_key_has_its_variable_and_a_bad_variable_is_named() {
    for key in keys::env_keys() {
        let name = env_var(key);
        let result = Partial::from_env([(name.as_str(), "nonsense value")]);
        if key == "context" {
            assert_eq!(result.unwrap().context.as_deref(), Some("nonsense value"), "any name is a context's name");
            continue;
        }
        let message = result.unwrap_err().to_string();
        assert!(message.starts_with(&format!("environment variable {name}: ")), "{message}");
        assert!(message.contains("nonsense value"), "the value refused is shown: {message}");
    }
    assert_eq!(env_var("group-concurrency"), "FLEETBOOT_GROUP_CONCURRENCY");
    let zero = Partial::from_env([("FLEETBOOT_CONCURRENCY", "0")]).unwrap_err().to_string();
    assert_eq!(zero, "environment variable FLEETBOOT_CONCURRENCY: a limit of 0 reboots nothing; use at least 1");
    let never = Partial::from_env([("FLEETBOOT_POLL_INTERVAL", "0s")]).unwrap_err().to_string();
    assert_eq!(never, "environment variable FLEETBOOT_POLL_INTERVAL: must be longer than zero");
    let huge = Partial::from_env([("FLEETBOOT_TIMEOUT", "9000h")]).unwrap_err().to_string();
    assert!(huge.contains("366 days"), "{huge}");
    assert_eq!(Partial::from_env([("FLEETBOOT_CONTEXT", "")]).unwrap().context, None);
    assert_eq!(Partial::from_env([("fleetboot_concurrency", "3"), ("FLEETBOOT_CONCURRENCY_X", "3")]).unwrap(), Partial::default());
}

#[test]
fn one_spelling_for_the_command_line_the_file_and_the_journal() {
    for &name in HostKeyPolicy::NAMES {
        let parsed: HostKeyPolicy = name.parse().unwrap();
        assert_eq!(parsed.to_string(), name);
        assert_eq!(serde_json::to_string(&parsed).unwrap(), format!("\"{name}\""));
        assert_eq!(serde_json::from_str::<HostKeyPolicy>(&format!("\"{name}\"")).unwrap(), parsed);
    }
    assert_eq!(Transport::NAMES, ["auto", "ssh", "redfish", "kube"]);
    assert_eq!(OutputFormat::NAMES, ["auto", "plain", "json", "yaml"]);
}

#[test]
fn durations_and_budgets_read_as_people_write_them() {
    assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("5min"), Ok(Duration::from_secs(300)));
    assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("366days"), Ok(Duration::from_secs(366 * 86_400)));
    assert_eq!(parse_duration("1 hour"), Ok(Duration::from_secs(3600)));
    assert!(parse_duration("").is_err() && parse_duration("5").is_err() && parse_duration("5 fortnights").is_err());
    assert_eq!("10%".parse(), Ok(FailureBudget::Percent(10)));
    assert_eq!("3".parse(), Ok(FailureBudget::Count(3)));
    assert!("101%".parse::<FailureBudget>().is_err());
}

#[test]
fn a_debug_image_is_an_image_reference() {
    let image = |text: &str| Partial::from_env([("FLEETBOOT_DEBUG_IMAGE", text)]).map(|p| p.debug_image);
    for good in [
        "registry.redhat.io/rhel9/support-tools",
        "registry.redhat.io/rhel9/support-tools:latest",
        "mirror.example:5000/ocp/release@sha256:0f3e1a7c2b9d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7",
        "localhost/tools:1.2_rc-3",
        "busybox",
    ] {
        assert_eq!(image(good).unwrap().as_deref(), Some(good));
    }
    assert_eq!(image("").unwrap(), None, "empty: as `oc debug node` picks it");
    for bad in ["Registry.local/Tools", "quay.io/x/tools:", "quay.io/x/tools@sha256:zz", "quay.io//tools", "-x/tools"] {
        let message = image(bad).unwrap_err().to_string();
        assert!(message.contains("FLEETBOOT_DEBUG_IMAGE") && message.contains("not an image reference"), "{bad}: {message}");
    }
}
