//! Key generation and parsing, all through aws-lc-rs (the one crypto backend).

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

use super::Signer;
use crate::config::SigningAlg;
use crate::model::SigningKeyRecord;

pub struct GeneratedKey {
    /// PKCS#8 v1 PEM of the private key.
    pub pem: String,
    /// kid, alg and public JWK filled in; times are the caller's to set.
    pub record: SigningKeyRecord,
}

/// Generates a fresh key pair for `alg`: P-256 for ES256, RSA-2048 for RS256, Ed25519 for EdDSA.
pub fn generate_key(alg: SigningAlg) -> anyhow::Result<GeneratedKey> {
    let fail = |what: &str| anyhow::anyhow!("key generation failed: {what}");
    let der: Vec<u8> = match alg {
        SigningAlg::ES256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| fail("P-256"))?
            .to_pkcs8v1()
            .map_err(|_| fail("P-256 PKCS#8"))?
            .as_ref()
            .to_vec(),
        SigningAlg::RS256 => {
            let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(|_| fail("RSA"))?;
            let der: aws_lc_rs::encoding::Pkcs8V1Der =
                kp.as_der().map_err(|_| fail("RSA PKCS#8"))?;
            der.as_ref().to_vec()
        }
        SigningAlg::EdDSA => Ed25519KeyPair::generate()
            .map_err(|_| fail("Ed25519"))?
            .to_pkcs8v1()
            .map_err(|_| fail("Ed25519 PKCS#8"))?
            .as_ref()
            .to_vec(),
    };
    let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der.clone()));
    let (kid, jwk) = public_jwk(alg, &der)?;
    Ok(GeneratedKey {
        pem,
        record: SigningKeyRecord {
            kid,
            alg: alg.as_str().into(),
            public_jwk: jwk,
            created_at: 0,
            activates_at: 0,
            expires_at: None,
            sealed_private_key: None,
        },
    })
}

/// Parses a PKCS#8 PEM private key once, for signing.
pub(crate) fn parse_private_key(alg: SigningAlg, pem_bytes: &[u8]) -> anyhow::Result<Signer> {
    let parsed = pem::parse(pem_bytes).map_err(|e| anyhow::anyhow!("not a PEM file: {e}"))?;
    if parsed.tag() != "PRIVATE KEY" {
        anyhow::bail!(
            "expected a PKCS#8 'PRIVATE KEY' PEM, found '{}'",
            parsed.tag()
        );
    }
    let der = parsed.contents();
    let bad = |e: aws_lc_rs::error::KeyRejected| anyhow::anyhow!("private key rejected: {e}");
    Ok(match alg {
        SigningAlg::ES256 => Signer::Ec(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).map_err(bad)?,
        ),
        SigningAlg::RS256 => Signer::Rsa(RsaKeyPair::from_pkcs8(der).map_err(bad)?),
        SigningAlg::EdDSA => Signer::Ed(Ed25519KeyPair::from_pkcs8(der).map_err(bad)?),
    })
}

/// The public JWK (with `kid` = RFC 7638 SHA-256 thumbprint, `use: sig`, `alg`) of a PKCS#8 key.
fn public_jwk(alg: SigningAlg, pkcs8: &[u8]) -> anyhow::Result<(String, String)> {
    let (jwt_alg, key) = match alg {
        SigningAlg::ES256 => (Algorithm::ES256, EncodingKey::from_ec_der(pkcs8)),
        SigningAlg::RS256 => {
            let kp = RsaKeyPair::from_pkcs8(pkcs8)
                .map_err(|e| anyhow::anyhow!("RSA key rejected: {e}"))?;
            let public = kp.public_key();
            let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
            let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
            let dk = DecodingKey::from_rsa_components(&n, &e)
                .map_err(|e| anyhow::anyhow!("RSA public key: {e}"))?;
            let jwk = Jwk::from_decoding_key(&dk, Some(Algorithm::RS256))
                .map_err(|e| anyhow::anyhow!("public JWK: {e}"))?;
            return finish_jwk(jwk);
        }
        SigningAlg::EdDSA => (Algorithm::EdDSA, EncodingKey::from_ed_der(pkcs8)),
    };
    let jwk =
        Jwk::from_encoding_key(&key, jwt_alg).map_err(|e| anyhow::anyhow!("public JWK: {e}"))?;
    if alg == SigningAlg::EdDSA {
        let kid = okp_thumbprint(pkcs8)?;
        return with_kid(jwk, kid);
    }
    finish_jwk(jwk)
}

fn finish_jwk(jwk: Jwk) -> anyhow::Result<(String, String)> {
    let kid = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|e| anyhow::anyhow!("thumbprint: {e}"))?;
    with_kid(jwk, kid)
}

fn with_kid(mut jwk: Jwk, kid: String) -> anyhow::Result<(String, String)> {
    jwk.common.key_id = Some(kid.clone());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    Ok((kid, serde_json::to_string(&jwk)?))
}

/// RFC 7638 §3.2 members for an OKP key (jsonwebtoken 11 does not compute OKP thumbprints).
fn okp_thumbprint(pkcs8: &[u8]) -> anyhow::Result<String> {
    let kp = Ed25519KeyPair::from_pkcs8(pkcs8)
        .map_err(|e| anyhow::anyhow!("Ed25519 key rejected: {e}"))?;
    let x = URL_SAFE_NO_PAD.encode(kp.public_key().as_ref());
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    Ok(URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        canonical.as_bytes(),
    )))
}
