//! Helpers shared by the test modules.

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

pub fn fixture(path: &str) -> String {
    let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

pub fn fixture_b64(path: &str) -> Vec<u8> {
    STANDARD
        .decode(fixture(path).trim())
        .expect("base64 fixture")
}

/// The DER certificates of a PEM text, in order.
pub fn pem_chain(text: &str) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(text.as_bytes())
        .map(|p| p.expect("pem").contents)
        .collect()
}

pub fn sha256(data: &[u8]) -> Vec<u8> {
    digest(&SHA256, data).as_ref().to_vec()
}

pub fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Unix seconds of an RFC 3339 UTC date `YYYY-MM-DDTHH:MM:SSZ` (days-from-civil).
pub fn unix(date: &str) -> i64 {
    let n = |a: usize, b: usize| date[a..b].parse::<i64>().expect("digits");
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    let (hh, mm, ss) = (n(11, 13), n(14, 16), n(17, 19));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + hh * 3600 + mm * 60 + ss
}

/// A copy of `data` with byte `i` XOR 0x01.
pub fn flip(data: &[u8], i: usize) -> Vec<u8> {
    let mut v = data.to_vec();
    v[i] ^= 0x01;
    v
}

/// A small deterministic PRNG (xorshift64*), for garbage inputs.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn unix_dates() {
    assert_eq!(unix("1970-01-01T00:00:00Z"), 0);
    assert_eq!(unix("2021-01-23T12:13:33Z"), 1_611_404_013);
    assert_eq!(unix("2023-03-01T00:00:00Z"), 1_677_628_800);
}

// ---- Synthetic PKI (rcgen) -------------------------------------------------------------

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, CustomExtension, DnType, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SignatureAlgorithm, date_time_ymd,
};

/// A CA certificate (self-signed when `parent` is `None`).
pub fn ca(
    name: &str,
    alg: &'static SignatureAlgorithm,
    parent: Option<&Issuer<'_, KeyPair>>,
    constraint: BasicConstraints,
) -> CertifiedIssuer<'static, KeyPair> {
    let key = if alg == &rcgen::PKCS_RSA_SHA256 {
        KeyPair::generate_rsa_for(alg, rcgen::RsaKeySize::_2048).expect("rsa ca key")
    } else {
        KeyPair::generate_for(alg).expect("ca key")
    };
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(constraint);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = date_time_ymd(2020, 1, 1);
    params.not_after = date_time_ymd(2040, 1, 1);
    match parent {
        None => CertifiedIssuer::self_signed(params, key).expect("root"),
        Some(parent) => CertifiedIssuer::signed_by(params, key, parent).expect("intermediate"),
    }
}

/// Leaf certificate parameters: a subject, validity 2024..2030, these custom extensions.
pub fn leaf_params(extensions: Vec<CustomExtension>) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, "leaf");
    params.is_ca = IsCa::ExplicitNoCa;
    params.not_before = date_time_ymd(2024, 1, 1);
    params.not_after = date_time_ymd(2030, 1, 1);
    params.custom_extensions = extensions;
    params
}

/// Unix seconds at which every synthetic certificate is valid.
pub fn synthetic_now() -> i64 {
    date_time_ymd(2025, 6, 1).unix_timestamp()
}

// ---- DER encoding, for the KeyDescription built in tests ----------------------------------

pub fn der_len(len: usize) -> Vec<u8> {
    if len < 0x80 {
        vec![len as u8]
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|&b| b == 0)
            .collect();
        let mut out = vec![0x80 | bytes.len() as u8];
        out.extend(bytes);
        out
    }
}

pub fn tlv(tag: &[u8], content: &[u8]) -> Vec<u8> {
    let mut out = tag.to_vec();
    out.extend(der_len(content.len()));
    out.extend_from_slice(content);
    out
}

pub fn seq(items: &[Vec<u8>]) -> Vec<u8> {
    tlv(&[0x30], &items.concat())
}

pub fn set(items: &[Vec<u8>]) -> Vec<u8> {
    tlv(&[0x31], &items.concat())
}

pub fn octets(data: &[u8]) -> Vec<u8> {
    tlv(&[0x04], data)
}

pub fn int(v: i64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let mut start = 0;
    while start < 7
        && ((bytes[start] == 0 && bytes[start + 1] & 0x80 == 0)
            || (bytes[start] == 0xff && bytes[start + 1] & 0x80 != 0))
    {
        start += 1;
    }
    tlv(&[0x02], &bytes[start..])
}

pub fn enumerated(v: u8) -> Vec<u8> {
    tlv(&[0x0a], &[v])
}

pub fn boolean(v: bool) -> Vec<u8> {
    tlv(&[0x01], &[if v { 0xff } else { 0x00 }])
}

/// `[tag] EXPLICIT` (context-specific, constructed), high tag numbers included.
pub fn explicit(tag: u32, content: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    if tag < 31 {
        t.push(0xa0 | tag as u8);
    } else {
        t.push(0xbf);
        let mut groups = Vec::new();
        let mut v = tag;
        while v > 0 {
            groups.push((v & 0x7f) as u8);
            v >>= 7;
        }
        for (i, g) in groups.iter().enumerate().rev() {
            t.push(if i > 0 { g | 0x80 } else { *g });
        }
    }
    tlv(&t, content)
}
