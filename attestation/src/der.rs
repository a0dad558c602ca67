//! A small reader of DER structures on top of `asn1-rs` (x509-parser's DER layer): it hands
//! out one TLV at a time and checks class, tag and form. No byte-level parsing here.

use x509_parser::asn1_rs::{Any, Class, FromDer, Tag};

/// Reads consecutive DER elements from a byte slice.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

/// Any parse failure; callers map it to their [`crate::Refusal`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct DerError;

pub(crate) type DerResult<T> = Result<T, DerError>;

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next element, whatever it is.
    pub(crate) fn any(&mut self) -> DerResult<Any<'a>> {
        let (rest, any) = Any::from_der(self.rest).map_err(|_| DerError)?;
        self.rest = rest;
        Ok(any)
    }

    /// The next element, which must be a universal one with this tag.
    fn universal(&mut self, tag: Tag) -> DerResult<Any<'a>> {
        let any = self.any()?;
        if any.class() != Class::Universal || any.tag() != tag {
            return Err(DerError);
        }
        Ok(any)
    }

    /// A SEQUENCE; returns a reader over its contents.
    pub(crate) fn sequence(&mut self) -> DerResult<Reader<'a>> {
        let any = self.universal(Tag::Sequence)?;
        if !any.header.is_constructed() {
            return Err(DerError);
        }
        Ok(Reader::new(any.data))
    }

    /// A SET (or SET OF); returns a reader over its contents.
    pub(crate) fn set(&mut self) -> DerResult<Reader<'a>> {
        let any = self.universal(Tag::Set)?;
        if !any.header.is_constructed() {
            return Err(DerError);
        }
        Ok(Reader::new(any.data))
    }

    /// An OCTET STRING (primitive form); returns its contents.
    pub(crate) fn octet_string(&mut self) -> DerResult<&'a [u8]> {
        let any = self.universal(Tag::OctetString)?;
        if any.header.is_constructed() {
            return Err(DerError);
        }
        Ok(any.data)
    }

    /// An INTEGER that fits an i64.
    pub(crate) fn integer(&mut self) -> DerResult<i64> {
        self.universal(Tag::Integer)?.i64().map_err(|_| DerError)
    }

    /// An ENUMERATED value.
    pub(crate) fn enumerated(&mut self) -> DerResult<u32> {
        let e = self
            .universal(Tag::Enumerated)?
            .enumerated()
            .map_err(|_| DerError)?;
        Ok(e.0)
    }

    /// A BOOLEAN.
    pub(crate) fn boolean(&mut self) -> DerResult<bool> {
        self.universal(Tag::Boolean)?.bool().map_err(|_| DerError)
    }

    /// Refuses trailing bytes.
    pub(crate) fn finish(&self) -> DerResult<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DerError)
        }
    }
}

/// If `any` is `[tag] EXPLICIT` (context-specific, constructed), a reader over its contents.
pub(crate) fn explicit<'a>(any: &Any<'a>, tag: u32) -> Option<Reader<'a>> {
    if any.class() == Class::ContextSpecific && any.tag().0 == tag && any.header.is_constructed() {
        Some(Reader::new(any.data))
    } else {
        None
    }
}
