//! The key-encryption key (KEK): seals private signing keys before they are stored in the
//! database, so that every replica can sign with every published key while a copy of the
//! database alone (a backup, a replica's disk) reveals no private key.
//!
//! AES-256-GCM from aws-lc-rs with a random 96-bit nonce per sealing and the key's `kid` as
//! associated data (a sealed key cannot be moved to another row). Stored form:
//! `v1.` + base64url(nonce ‖ ciphertext ‖ tag).
//!
//! The KEK comes from `LATCHKEY_KEY_ENCRYPTION_KEY` (32 bytes, base64 or base64url) when set,
//! otherwise from `keys_dir/kek.key`, created (mode 0600) on first use. Replicas must share it.

use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::{hkdf, hmac};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// The environment variable that carries the KEK (takes precedence over the file).
pub const KEK_ENV: &str = "LATCHKEY_KEY_ENCRYPTION_KEY";
const KEK_FILE: &str = "kek.key";
const PREFIX: &str = "v1.";

pub struct Kek {
    key: RandomizedNonceKey,
    /// HKDF pseudo-random key from the KEK, for deriving purpose-specific keys that every
    /// replica sharing the KEK derives alike (see [`Kek::mac_key`]). The KEK itself only seals.
    prk: hkdf::Prk,
    /// Where the KEK came from, for error messages (never the key itself).
    source: String,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek").field("source", &self.source).finish()
    }
}

impl Kek {
    /// The KEK from the environment, else from `keys_dir/kek.key` (generated if missing).
    pub fn load(keys_dir: &Path) -> anyhow::Result<Kek> {
        if let Ok(v) = std::env::var(KEK_ENV)
            && !v.trim().is_empty()
        {
            let bytes = decode_key(v.trim()).map_err(|e| {
                anyhow::anyhow!("{KEK_ENV}: {e} (generate one with `openssl rand -base64 32`)")
            })?;
            return Kek::from_bytes(&bytes, format!("${KEK_ENV}"));
        }
        let path = keys_dir.join(KEK_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_kek_file(&path)?,
            Err(e) => anyhow::bail!("cannot read the key-encryption key {}: {e}", path.display()),
        };
        let bytes = decode_key(text.trim())
            .map_err(|e| anyhow::anyhow!("key-encryption key {}: {e}", path.display()))?;
        Kek::from_bytes(&bytes, path.display().to_string())
    }

    fn from_bytes(bytes: &[u8], source: String) -> anyhow::Result<Kek> {
        let key = RandomizedNonceKey::new(&AES_256_GCM, bytes)
            .map_err(|_| anyhow::anyhow!("key-encryption key from {source} is unusable"))?;
        let prk =
            hkdf::Salt::new(hkdf::HKDF_SHA256, b"latchkey kek-derived keys v1").extract(bytes);
        Ok(Kek { key, prk, source })
    }

    /// A KEK from raw bytes (tests, tools).
    pub fn from_raw(bytes: &[u8; 32]) -> anyhow::Result<Kek> {
        Kek::from_bytes(bytes, "raw bytes".into())
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// An HMAC-SHA256 key for `purpose`, derived from the KEK with HKDF-SHA256 (RFC 5869):
    /// the same on every replica that shares the KEK, independent of the KEK itself and of the
    /// keys for other purposes. Used for stateless DPoP nonces (`protocol::dpop`).
    pub fn mac_key(&self, purpose: &[u8]) -> Option<hmac::Key> {
        let info = [purpose];
        let okm = self.prk.expand(&info, hmac::HMAC_SHA256).ok()?;
        Some(hmac::Key::from(okm))
    }

    /// Encrypts a private key for storage under `kid`.
    pub fn seal(&self, kid: &str, plaintext: &[u8]) -> anyhow::Result<String> {
        let mut buf = plaintext.to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(kid.as_bytes()), &mut buf)
            .map_err(|_| anyhow::anyhow!("sealing the private key of {kid} failed"))?;
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(nonce.as_ref());
        out.extend_from_slice(&buf);
        Ok(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(out)))
    }

    /// Decrypts what [`seal`](Self::seal) produced for the same `kid`.
    pub fn open(&self, kid: &str, sealed: &str) -> anyhow::Result<Vec<u8>> {
        let unusable = || {
            anyhow::anyhow!(
                "the private key of {kid} cannot be decrypted with the key-encryption key from {}: \
                 every replica must use the same key-encryption key ({KEK_ENV} or keys_dir/{KEK_FILE})",
                self.source
            )
        };
        let body = sealed
            .strip_prefix(PREFIX)
            .ok_or_else(|| anyhow::anyhow!("the private key of {kid} has an unknown format"))?;
        let raw = URL_SAFE_NO_PAD.decode(body).map_err(|_| unusable())?;
        if raw.len() < NONCE_LEN {
            return Err(unusable());
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| unusable())?;
        let mut buf = ct.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(kid.as_bytes()), &mut buf)
            .map_err(|_| unusable())?;
        Ok(plain.to_vec())
    }
}

fn decode_key(text: &str) -> Result<Vec<u8>, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .or_else(|_| STANDARD.decode(text))
        .map_err(|_| "not base64".to_string())?;
    if bytes.len() != 32 {
        return Err(format!("must be 32 bytes, found {}", bytes.len()));
    }
    Ok(bytes)
}

fn create_kek_file(path: &PathBuf) -> anyhow::Result<String> {
    use std::io::Write;
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("operating system RNG failed"))?;
    let text = URL_SAFE_NO_PAD.encode(bytes);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(mut f) => {
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            tracing::info!(path = %path.display(), "generated key-encryption key");
            Ok(text)
        }
        // Another process (the CLI, a second server) created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(path)?)
        }
        Err(e) => anyhow::bail!(
            "cannot create the key-encryption key {}: {e}",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open_round_trips() {
        let kek = Kek::from_raw(&[7u8; 32]).unwrap();
        let sealed = kek.seal("kid-1", b"private key bytes").unwrap();
        assert!(sealed.starts_with("v1."));
        assert!(!sealed.contains("private"));
        assert_eq!(kek.open("kid-1", &sealed).unwrap(), b"private key bytes");
        // Fresh nonce every time.
        assert_ne!(sealed, kek.seal("kid-1", b"private key bytes").unwrap());
    }

    #[test]
    fn another_kek_or_another_kid_or_a_flipped_bit_is_refused() {
        let kek = Kek::from_raw(&[7u8; 32]).unwrap();
        let other = Kek::from_raw(&[8u8; 32]).unwrap();
        let sealed = kek.seal("kid-1", b"secret").unwrap();
        let err = other.open("kid-1", &sealed).unwrap_err().to_string();
        assert!(err.contains("same key-encryption key"), "{err}");
        assert!(kek.open("kid-2", &sealed).is_err());
        let mut raw = URL_SAFE_NO_PAD.decode(&sealed[3..]).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert!(
            kek.open("kid-1", &format!("v1.{}", URL_SAFE_NO_PAD.encode(raw)))
                .is_err()
        );
        assert!(kek.open("kid-1", "v1.").is_err());
        assert!(kek.open("kid-1", "v2.abc").is_err());
    }

    #[test]
    fn derived_mac_keys_depend_on_the_kek_and_the_purpose() {
        let tag = |kek: &Kek, purpose: &[u8]| {
            hmac::sign(&kek.mac_key(purpose).unwrap(), b"msg")
                .as_ref()
                .to_vec()
        };
        let a = Kek::from_raw(&[7u8; 32]).unwrap();
        let a2 = Kek::from_raw(&[7u8; 32]).unwrap();
        let b = Kek::from_raw(&[8u8; 32]).unwrap();
        assert_eq!(
            tag(&a, b"p"),
            tag(&a2, b"p"),
            "replicas derive the same key"
        );
        assert_ne!(tag(&a, b"p"), tag(&b, b"p"));
        assert_ne!(tag(&a, b"p"), tag(&a, b"q"));
    }

    #[test]
    fn key_text_must_be_32_bytes_of_base64() {
        assert!(decode_key(&URL_SAFE_NO_PAD.encode([1u8; 32])).is_ok());
        assert!(decode_key(&STANDARD.encode([1u8; 32])).is_ok());
        assert!(decode_key(&STANDARD.encode([1u8; 16])).is_err());
        assert!(decode_key("not base64 at all!").is_err());
    }

    #[test]
    fn the_kek_file_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEK_FILE);
        let a = create_kek_file(&path).unwrap();
        let b = create_kek_file(&path).unwrap();
        assert_eq!(a, b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
