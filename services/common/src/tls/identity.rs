//! Who a certificate speaks for. Every component's certificate carries the DNS name
//! `orderly-<component>` besides the addresses it is reached at: a client checks that the server
//! it reached is the component it meant, whatever address it dialled (a pod's IP, say), and a
//! server learns which component calls it from the client's certificate.

use rustls::{client::verify_server_name, server::ParsedCertificate};
use rustls_pki_types::{CertificateDer, ServerName};

/// The name in `component`'s certificate that says it is that component.
pub fn dns_name(component: &str) -> String {
    format!("orderly-{component}")
}

/// `dns_name(component)` as rustls checks it.
pub(super) fn server_name(component: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(dns_name(component))
        .map_err(|error| format!("{component:?} cannot be a TLS name: {error}"))
}

/// Whether `certificate` (a chain's first) carries `component`'s name.
fn carries(certificate: &CertificateDer<'_>, component: &str) -> Result<(), String> {
    let parsed = ParsedCertificate::try_from(certificate)
        .map_err(|error| format!("not a certificate: {error}"))?;
    let name = server_name(component)?;
    verify_server_name(&parsed, &name).map_err(|_| {
        format!(
            "the certificate is not {component}'s: its subject alternative names must include \
             DNS:{}",
            dns_name(component)
        )
    })
}

/// A component's own certificate must say it is that component, or no peer would take it.
pub(super) fn check_own(component: &str, certificate: &CertificateDer<'_>) -> Result<(), String> {
    carries(certificate, component)
}

/// The component among `components` that a client's certificate chain (verified in the
/// handshake, its own certificate first) speaks for.
pub fn peer_component(
    chain: &[CertificateDer<'_>],
    components: &[&'static str],
) -> Option<&'static str> {
    let certificate = chain.first()?;
    (components.iter())
        .find(|component| carries(certificate, component).is_ok())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(names: &[&str]) -> CertificateDer<'static> {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let issued = rcgen::generate_simple_self_signed(names).expect("a certificate");
        issued.cert.der().clone()
    }

    #[test]
    fn a_certificate_speaks_for_the_component_it_names() {
        let components = ["order", "orchestrator", "payment"];
        let orchestrator = certificate(&["orderly-orchestrator", "localhost"]);
        assert_eq!(
            peer_component(std::slice::from_ref(&orchestrator), &components),
            Some("orchestrator")
        );
        let nobody = certificate(&["localhost", "orchestrator"]);
        assert_eq!(peer_component(&[nobody], &components), None);
        assert_eq!(peer_component(&[], &components), None);

        assert!(check_own("orchestrator", &orchestrator).is_ok());
        let wrong = check_own("payment", &orchestrator).unwrap_err();
        assert!(wrong.contains("DNS:orderly-payment"), "{wrong}");
    }
}
