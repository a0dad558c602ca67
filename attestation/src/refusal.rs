//! Why an attestation, assertion or verdict was refused, and configuration errors.

use std::fmt;

/// Why an attestation, an assertion or an integrity verdict was refused.
///
/// One enum for the three verifiers. Every variant has a stable snake_case code
/// ([`Refusal::as_str`]) meant for logs, metrics and tests, and an ASCII [`fmt::Display`]
/// text suitable for an OAuth `error_description`. Neither echoes anything taken from the
/// input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refusal {
    /// The input is larger than the verifier accepts.
    TooLarge,
    /// Not well-formed CBOR, or CBOR without the expected map and fields (Apple).
    BadCbor,
    /// The attestation statement format is not `apple-appattest`.
    UnsupportedFormat,
    /// The authenticator data is truncated or inconsistent (Apple).
    BadAuthenticatorData,
    /// A certificate could not be parsed, or the chain is empty or too long.
    BadCertificate,
    /// The certificate chain does not lead to a trusted root, a link's issuer is not a CA,
    /// or a certificate's signature uses an unsupported algorithm.
    ChainUntrusted,
    /// A certificate of the chain (or the root it ends at) has expired at `now`.
    CertificateExpired,
    /// A certificate of the chain (or the root it ends at) is not yet valid at `now`.
    CertificateNotYetValid,
    /// A certificate's serial number is on the revocation (status) list.
    Revoked,
    /// The attestation extension of the leaf certificate is missing.
    MissingAttestationExtension,
    /// The attestation extension is malformed, or appears where it must not (Android: on a
    /// certificate above the leaf).
    BadAttestationExtension,
    /// The attested key is of an unsupported type or curve.
    UnsupportedKey,
    /// Apple: SHA-256(authData ‖ clientDataHash) is not the nonce in the certificate.
    NonceMismatch,
    /// The RP ID hash is not SHA-256 of an allowed App ID (Apple).
    RpIdMismatch,
    /// Apple: the key identifier is not SHA-256 of the attested public key.
    KeyIdMismatch,
    /// Apple: the credential id in the authenticator data is not the key identifier.
    CredentialIdMismatch,
    /// Apple: the attestation's sign counter is not 0.
    CounterNotZero,
    /// Apple: the assertion's sign counter is not greater than the stored one.
    CounterNotIncreasing,
    /// Apple: the AAGUID is neither the production nor the development value.
    BadAaguid,
    /// Apple: a development-environment attestation, and the policy does not allow it.
    DevelopmentNotAllowed,
    /// A signature does not verify (assertion, JWS, or a certificate of the chain).
    BadSignature,
    /// Android: the attestation challenge is not the expected one.
    ChallengeMismatch,
    /// The package name is not allowed (Android, Play Integrity).
    PackageNotAllowed,
    /// No signing-certificate digest of the app is allowed (Android, Play Integrity).
    SigningCertNotAllowed,
    /// Android: the attestation or KeyMint security level is below the policy minimum.
    SecurityLevelTooLow,
    /// Android: the verified boot state is not `Verified`, or the root of trust is missing.
    BootStateNotVerified,
    /// Android: the bootloader is not locked.
    DeviceNotLocked,
    /// Play Integrity: not a compact JWE / JWS, bad base64, or bad header JSON.
    MalformedToken,
    /// Play Integrity: a header `alg`/`enc` other than A256KW/A256GCM (JWE) or ES256 (JWS),
    /// or a `zip`/`crit` header.
    UnsupportedAlgorithm,
    /// Play Integrity: key unwrap or AES-GCM decryption failed (wrong key or tampered token).
    DecryptionFailed,
    /// Play Integrity: the payload is not the expected JSON.
    BadPayload,
    /// Play Integrity: the nonce or request hash is not the expected one.
    RequestMismatch,
    /// Play Integrity: the verdict is older than the policy's maximum age.
    VerdictTooOld,
    /// Play Integrity: the verdict's timestamp is in the future.
    VerdictFromFuture,
    /// Play Integrity: the app is not recognized by Google Play.
    AppNotRecognized,
    /// Play Integrity: the device verdict is below the policy minimum.
    DeviceIntegrityTooLow,
    /// Play Integrity: the app is not licensed and the policy requires it.
    NotLicensed,
}

impl Refusal {
    /// The stable snake_case code of this refusal.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Refusal::TooLarge => "too_large",
            Refusal::BadCbor => "bad_cbor",
            Refusal::UnsupportedFormat => "unsupported_format",
            Refusal::BadAuthenticatorData => "bad_authenticator_data",
            Refusal::BadCertificate => "bad_certificate",
            Refusal::ChainUntrusted => "chain_untrusted",
            Refusal::CertificateExpired => "certificate_expired",
            Refusal::CertificateNotYetValid => "certificate_not_yet_valid",
            Refusal::Revoked => "revoked",
            Refusal::MissingAttestationExtension => "missing_attestation_extension",
            Refusal::BadAttestationExtension => "bad_attestation_extension",
            Refusal::UnsupportedKey => "unsupported_key",
            Refusal::NonceMismatch => "nonce_mismatch",
            Refusal::RpIdMismatch => "rp_id_mismatch",
            Refusal::KeyIdMismatch => "key_id_mismatch",
            Refusal::CredentialIdMismatch => "credential_id_mismatch",
            Refusal::CounterNotZero => "counter_not_zero",
            Refusal::CounterNotIncreasing => "counter_not_increasing",
            Refusal::BadAaguid => "bad_aaguid",
            Refusal::DevelopmentNotAllowed => "development_not_allowed",
            Refusal::BadSignature => "bad_signature",
            Refusal::ChallengeMismatch => "challenge_mismatch",
            Refusal::PackageNotAllowed => "package_not_allowed",
            Refusal::SigningCertNotAllowed => "signing_cert_not_allowed",
            Refusal::SecurityLevelTooLow => "security_level_too_low",
            Refusal::BootStateNotVerified => "boot_state_not_verified",
            Refusal::DeviceNotLocked => "device_not_locked",
            Refusal::MalformedToken => "malformed_token",
            Refusal::UnsupportedAlgorithm => "unsupported_algorithm",
            Refusal::DecryptionFailed => "decryption_failed",
            Refusal::BadPayload => "bad_payload",
            Refusal::RequestMismatch => "request_mismatch",
            Refusal::VerdictTooOld => "verdict_too_old",
            Refusal::VerdictFromFuture => "verdict_from_future",
            Refusal::AppNotRecognized => "app_not_recognized",
            Refusal::DeviceIntegrityTooLow => "device_integrity_too_low",
            Refusal::NotLicensed => "not_licensed",
        }
    }

    /// Every refusal, in declaration order (for documentation and tests).
    pub const ALL: &'static [Refusal] = &[
        Refusal::TooLarge,
        Refusal::BadCbor,
        Refusal::UnsupportedFormat,
        Refusal::BadAuthenticatorData,
        Refusal::BadCertificate,
        Refusal::ChainUntrusted,
        Refusal::CertificateExpired,
        Refusal::CertificateNotYetValid,
        Refusal::Revoked,
        Refusal::MissingAttestationExtension,
        Refusal::BadAttestationExtension,
        Refusal::UnsupportedKey,
        Refusal::NonceMismatch,
        Refusal::RpIdMismatch,
        Refusal::KeyIdMismatch,
        Refusal::CredentialIdMismatch,
        Refusal::CounterNotZero,
        Refusal::CounterNotIncreasing,
        Refusal::BadAaguid,
        Refusal::DevelopmentNotAllowed,
        Refusal::BadSignature,
        Refusal::ChallengeMismatch,
        Refusal::PackageNotAllowed,
        Refusal::SigningCertNotAllowed,
        Refusal::SecurityLevelTooLow,
        Refusal::BootStateNotVerified,
        Refusal::DeviceNotLocked,
        Refusal::MalformedToken,
        Refusal::UnsupportedAlgorithm,
        Refusal::DecryptionFailed,
        Refusal::BadPayload,
        Refusal::RequestMismatch,
        Refusal::VerdictTooOld,
        Refusal::VerdictFromFuture,
        Refusal::AppNotRecognized,
        Refusal::DeviceIntegrityTooLow,
        Refusal::NotLicensed,
    ];

    fn description(&self) -> &'static str {
        match self {
            Refusal::TooLarge => "the attestation is too large",
            Refusal::BadCbor => "the attestation is not the expected CBOR",
            Refusal::UnsupportedFormat => "the attestation format is not apple-appattest",
            Refusal::BadAuthenticatorData => "the authenticator data is malformed",
            Refusal::BadCertificate => "a certificate of the attestation is malformed",
            Refusal::ChainUntrusted => "the certificate chain does not lead to a trusted root",
            Refusal::CertificateExpired => "a certificate of the attestation has expired",
            Refusal::CertificateNotYetValid => "a certificate of the attestation is not yet valid",
            Refusal::Revoked => "a certificate of the attestation is revoked",
            Refusal::MissingAttestationExtension => "the attestation extension is missing",
            Refusal::BadAttestationExtension => "the attestation extension is malformed",
            Refusal::UnsupportedKey => "the attested key type is not supported",
            Refusal::NonceMismatch => "the attestation nonce does not match the client data",
            Refusal::RpIdMismatch => "the attestation is for another app",
            Refusal::KeyIdMismatch => "the key identifier does not match the attested key",
            Refusal::CredentialIdMismatch => "the credential id does not match the key identifier",
            Refusal::CounterNotZero => "the attestation counter is not zero",
            Refusal::CounterNotIncreasing => "the assertion counter did not increase",
            Refusal::BadAaguid => "the attestation environment is unknown",
            Refusal::DevelopmentNotAllowed => "development attestations are not accepted",
            Refusal::BadSignature => "a signature does not verify",
            Refusal::ChallengeMismatch => "the attestation challenge does not match",
            Refusal::PackageNotAllowed => "the app package is not allowed",
            Refusal::SigningCertNotAllowed => "the app signing certificate is not allowed",
            Refusal::SecurityLevelTooLow => "the key is not protected by secure hardware",
            Refusal::BootStateNotVerified => "the device boot state is not verified",
            Refusal::DeviceNotLocked => "the device bootloader is not locked",
            Refusal::MalformedToken => "the integrity token is malformed",
            Refusal::UnsupportedAlgorithm => "the integrity token uses an unsupported algorithm",
            Refusal::DecryptionFailed => "the integrity token cannot be decrypted",
            Refusal::BadPayload => "the integrity verdict is malformed",
            Refusal::RequestMismatch => "the integrity verdict is for another request",
            Refusal::VerdictTooOld => "the integrity verdict is too old",
            Refusal::VerdictFromFuture => "the integrity verdict is dated in the future",
            Refusal::AppNotRecognized => "the app is not recognized by Google Play",
            Refusal::DeviceIntegrityTooLow => "the device integrity is too low",
            Refusal::NotLicensed => "the app is not licensed",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

impl std::error::Error for Refusal {}

/// A configuration value (root certificate, key, revocation list) could not be used.
///
/// Returned by the constructors of policies and keys, never by a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A root certificate is not valid PEM or DER X.509.
    BadCertificate(String),
    /// A key is not the expected base64 or has the wrong length or type.
    BadKey(&'static str),
    /// The revocation status list is not the expected JSON.
    BadRevocationList(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::BadCertificate(why) => write!(f, "bad root certificate: {why}"),
            ConfigError::BadKey(why) => write!(f, "bad key: {why}"),
            ConfigError::BadRevocationList(why) => write!(f, "bad revocation list: {why}"),
        }
    }
}

impl std::error::Error for ConfigError {}
