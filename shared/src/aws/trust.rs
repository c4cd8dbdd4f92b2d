//! Which certificate authorities the functions trust for TLS to AWS.
//!
//! Every endpoint of the `aws` and `aws-us-gov` partitions presents a certificate that chains to
//! one of the five roots of Amazon Trust Services (the European Sovereign Cloud's too, through
//! intermediates cross-signed by Amazon Root CA 1, 3 and 4); amazontrust.com recommends exactly
//! these five for a custom trust store. Trusting only them is narrower than the system store (no
//! other authority can stand in for an AWS endpoint) and cheaper: the system store is some 140 PEM
//! certificates read and decoded, with a constant-time base64 decoder, at every cold start, which
//! was about half of a function's start-up CPU.
//!
//! The system store is used instead wherever these five may not be enough: when the operator
//! points `SSL_CERT_FILE` or `SSL_CERT_DIR` at a bundle (a TLS-inspecting proxy, a private CA), for
//! a custom HTTPS endpoint (`AWS_ENDPOINT_URL`), and in partitions whose endpoints Amazon Trust
//! Services does not certify (China, the isolated regions).

/// Amazon Root CA 1–4 and Starfield Services Root Certificate Authority - G2, as published by
/// Amazon Trust Services and carried by Mozilla's root store (SHA-256 of Amazon Root CA 1:
/// 8ECDE688…98196E). They expire in 2037–2040.
pub const AMAZON_TRUST_SERVICES_ROOTS: &str = include_str!("amazon-trust-services-roots.pem");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustRoots {
    AmazonTrustServices,
    /// The system's store, through `rustls-native-certs` (`SSL_CERT_FILE`, `SSL_CERT_DIR`, or the
    /// distribution's bundle and folder), and why.
    System(&'static str),
}

/// Chooses the roots for a function in `region`, with the optional custom endpoint, from the
/// environment read through `var`.
pub fn choose(
    region: &str,
    endpoint_url: Option<&str>,
    var: impl Fn(&str) -> Option<String>,
) -> TrustRoots {
    let set = |name: &str| var(name).is_some_and(|v| !v.trim().is_empty());
    if set("SSL_CERT_FILE") || set("SSL_CERT_DIR") {
        return TrustRoots::System("SSL_CERT_FILE or SSL_CERT_DIR is set");
    }
    if endpoint_url.is_some_and(|url| {
        url.trim_start()
            .to_ascii_lowercase()
            .starts_with("https://")
    }) {
        return TrustRoots::System("AWS_ENDPOINT_URL names a custom HTTPS endpoint");
    }
    let region = region.to_ascii_lowercase();
    if region.starts_with("cn-") || region.contains("-iso") {
        return TrustRoots::System(
            "the region's endpoints are not certified by Amazon Trust Services",
        );
    }
    TrustRoots::AmazonTrustServices
}

/// The one HTTP client of every binary (hyper 1, rustls on ring) with the chosen roots.
pub fn https_client(roots: TrustRoots) -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{
        rustls_provider::CryptoMode, Provider, TlsContext, TrustStore,
    };
    let builder =
        aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring));
    let context = match roots {
        TrustRoots::System(_) => None,
        TrustRoots::AmazonTrustServices => {
            let store = TrustStore::empty()
                .with_native_roots(false)
                .with_pem_certificate(AMAZON_TRUST_SERVICES_ROOTS.as_bytes());
            // Building a context only stores the settings; should that ever fail, the system
            // store still verifies AWS's certificates.
            TlsContext::builder().with_trust_store(store).build().ok()
        }
    };
    match context {
        Some(context) => builder.tls_context(context).build_https(),
        None => builder.build_https(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;

    fn no_vars(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_five_roots_are_whole_certificates_that_webpki_accepts_as_anchors() {
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(AMAZON_TRUST_SERVICES_ROOTS.as_bytes())
                .collect::<Result<_, _>>()
                .expect("PEM");
        assert_eq!(certs.len(), 5);
        for cert in &certs {
            webpki::anchor_from_trusted_cert(cert).expect("a trust anchor");
        }
        let names = [
            "Amazon Root CA 1",
            "Amazon Root CA 2",
            "Amazon Root CA 3",
            "Amazon Root CA 4",
            "Starfield Services Root Certificate Authority - G2",
        ];
        for (cert, name) in certs.iter().zip(names) {
            let der: &[u8] = cert.as_ref();
            assert!(
                der.windows(name.len()).any(|w| w == name.as_bytes()),
                "{name}"
            );
        }
    }

    #[test]
    fn aws_regions_trust_amazon_trust_services_and_nothing_else() {
        for region in [
            "us-east-1",
            "eu-west-1",
            "ap-southeast-5",
            "us-gov-west-1",
            "mx-central-1",
        ] {
            assert_eq!(
                choose(region, None, no_vars),
                TrustRoots::AmazonTrustServices,
                "{region}"
            );
        }
        // A plain-HTTP endpoint (a local emulator) has no certificate to verify.
        assert_eq!(
            choose("eu-west-1", Some("http://127.0.0.1:5000"), no_vars),
            TrustRoots::AmazonTrustServices
        );
    }

    #[test]
    fn the_system_store_where_the_five_may_not_be_enough() {
        for region in [
            "cn-north-1",
            "cn-northwest-1",
            "us-iso-east-1",
            "us-isob-east-1",
            "eu-isoe-west-1",
        ] {
            assert!(
                matches!(choose(region, None, no_vars), TrustRoots::System(_)),
                "{region}"
            );
        }
        let proxy = choose(
            "eu-west-1",
            Some(" HTTPS://ssm.internal.example:8443"),
            no_vars,
        );
        assert_eq!(
            proxy,
            TrustRoots::System("AWS_ENDPOINT_URL names a custom HTTPS endpoint")
        );
        for name in ["SSL_CERT_FILE", "SSL_CERT_DIR"] {
            let var = |n: &str| (n == name).then(|| "/etc/pki/corp.pem".to_owned());
            assert!(
                matches!(choose("eu-west-1", None, var), TrustRoots::System(_)),
                "{name}"
            );
        }
        let blank = |n: &str| (n == "SSL_CERT_FILE").then(|| " ".to_owned());
        assert_eq!(
            choose("eu-west-1", None, blank),
            TrustRoots::AmazonTrustServices
        );
    }

    #[tokio::test]
    async fn both_clients_build_without_touching_the_network() {
        let _ = https_client(TrustRoots::AmazonTrustServices);
        let _ = https_client(TrustRoots::System("test"));
    }
}
