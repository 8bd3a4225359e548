//! Hiding secret values in what a step prints.
//!
//! A [`Masker`] is built once per attempt from the values of the secrets the step receives.
//! From each value it derives the byte patterns that would betray it, and replaces every
//! occurrence of any of them with [`MASK`] (`***`):
//!
//! - the value itself;
//! - its base64 encodings, standard and URL-safe, with and without padding, plus the part
//!   that stays the same wherever the value sits inside a larger base64 blob (at an offset
//!   of 0, 1 or 2 modulo 3);
//! - its percent-encoded forms (every byte outside RFC 3986's unreserved set as `%XX`, in
//!   upper- and lower-case hex, and the form encoding that writes a space as `+`);
//! - its form inside a JSON string (quotes, backslashes and control characters escaped,
//!   either leaving other characters as UTF-8 or writing them as `\uXXXX`);
//! - for a value of several lines: the value with LF and with CRLF line ends (each also in
//!   the encodings above), and each line on its own, as it is. A line is then masked
//!   wherever it appears, even in output that has nothing to do with the secret (a line
//!   such as `  "type": "service_account",` of a JSON key file, say).
//!
//! Occurrences may overlap (two secrets sharing bytes, a value and one of its own lines):
//! the masked text is the union of all occurrences, and each stretch of overlapping
//! occurrences becomes a single `***`, so no byte of any occurrence survives. Occurrences
//! that merely touch are masked separately (`secretsecret` becomes `******`).
//!
//! [`StreamMasker`] does the same on output that arrives in chunks, holding back only the
//! bytes that could still begin an occurrence; for any split of a text into chunks its
//! output is exactly [`Masker::mask`] of the whole.
//!
//! ```
//! use baton_core::mask::Masker;
//!
//! let masker = Masker::new(["hunter22"]).expect("a small secret");
//! assert_eq!(masker.mask_str("password: hunter22"), "password: ***");
//! assert_eq!(masker.mask_str("auth: aHVudGVyMjI="), "auth: ***");
//!
//! let mut stream = masker.stream();
//! let mut out = stream.push(b"password: hun").into_owned();
//! out.extend_from_slice(&stream.push(b"ter22\n"));
//! out.extend_from_slice(&stream.finish());
//! assert_eq!(out, b"password: ***\n");
//! ```
//!
//! # What masking does not catch
//!
//! Masking is a safety net for accidents, not a boundary against a step that means to leak
//! a secret it was given. It does not catch:
//!
//! - values, lines or derived patterns shorter than [`MIN_MASKED_LEN`] bytes, and values or
//!   lines made only of whitespace: masking them would garble ordinary output;
//! - other encodings: hex, rot13, base32, any other base64 alphabet or line-wrapped base64,
//!   percent-encoding that leaves reserved characters such as `/` unescaped, JSON that
//!   escapes more than the two common styles (such as `\/`), shell or other quoting;
//! - compressed or encrypted data, and any other value the step computes from the secret
//!   (a substring, a reversal, a changed case, a hash);
//! - a value printed in pieces: one character per line, or interleaved with other output;
//! - a secret that is not among the values the masker was built from.
//!
//! A secret that itself contains `*` could in principle be pieced together from a mask and
//! the text around it.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine as _;
use base64::engine::GeneralPurpose;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

/// Shortest value or derived pattern that is masked, in bytes.
///
/// Shorter ones are left alone: a three-byte secret such as `abc` or `123` appears in
/// ordinary output far too often, and masking it would make logs unreadable while hiding
/// little (a value that short is guessable anyway).
pub const MIN_MASKED_LEN: usize = 4;

/// What every occurrence of a secret is replaced with.
pub const MASK: &[u8] = b"***";

/// The set of patterns derived from some secret values, and a searcher for all of them.
///
/// Cheap to clone: clones share the compiled searcher. Its `Debug` output shows how many
/// patterns it holds, never the patterns.
#[derive(Clone, Default)]
pub struct Masker {
    /// `None` when there is nothing to hide, which makes masking a no-op.
    searcher: Option<AhoCorasick>,
    /// Length of the longest pattern: a stream holds back one byte less than this.
    longest: usize,
    /// How many distinct patterns the searcher holds.
    patterns: usize,
}

/// The searcher for the patterns could not be built.
///
/// Only very large secrets cause this (the automaton outgrows its limits); a caller should
/// refuse to run the step rather than run it unmasked.
#[derive(Debug, thiserror::Error)]
#[error("cannot build a matcher for {patterns} secret patterns totalling {bytes} bytes")]
pub struct MaskError {
    patterns: usize,
    bytes: usize,
    #[source]
    source: aho_corasick::BuildError,
}

impl fmt::Debug for Masker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Deliberately not derived: the patterns are the secrets.
        f.debug_struct("Masker")
            .field("patterns", &self.patterns)
            .field("longest", &self.longest)
            .finish()
    }
}

impl Masker {
    /// Builds a masker for the given secret values (see the module docs for the patterns
    /// derived from each). Values shorter than [`MIN_MASKED_LEN`] are skipped.
    pub fn new<I, S>(secrets: I) -> Result<Self, MaskError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let mut set = BTreeSet::new();
        for secret in secrets {
            derive_patterns(secret.as_ref(), &mut set);
        }
        if set.is_empty() {
            return Ok(Self::default());
        }
        let longest = set.iter().map(Vec::len).max().unwrap_or(0);
        // Standard semantics is the one that reports every occurrence, overlapping ones
        // included, which the union of occurrences needs.
        let searcher = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&set)
            .map_err(|source| MaskError {
                patterns: set.len(),
                bytes: set.iter().map(Vec::len).sum(),
                source,
            })?;
        Ok(Self {
            searcher: Some(searcher),
            longest,
            patterns: set.len(),
        })
    }

    /// [`mask_str`](Self::mask_str) in place: `text` is replaced only when it held a value.
    pub fn mask_string(&self, text: &mut String) {
        if let Cow::Owned(masked) = self.mask_str(text) {
            *text = masked;
        }
    }

    /// Whether this masker hides nothing (no secrets, or all of them too short).
    pub fn is_empty(&self) -> bool {
        self.searcher.is_none()
    }

    /// How many distinct patterns are searched for.
    pub fn pattern_count(&self) -> usize {
        self.patterns
    }

    /// Length of the longest pattern, in bytes (0 when empty).
    pub fn longest_pattern(&self) -> usize {
        self.longest
    }

    /// `text` with every occurrence of every pattern replaced by [`MASK`]; borrowed, with
    /// no copy, when nothing occurs.
    pub fn mask<'t>(&self, text: &'t [u8]) -> Cow<'t, [u8]> {
        let runs = self.runs(text);
        if runs.is_empty() {
            return Cow::Borrowed(text);
        }
        Cow::Owned(splice(text, &runs))
    }

    /// [`Masker::mask`] for text, keeping it valid UTF-8: when a secret that is not itself
    /// UTF-8 matches inside a character, the mask widens to cover the whole character.
    pub fn mask_str<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut runs = self.runs(text.as_bytes());
        if runs.is_empty() {
            return Cow::Borrowed(text);
        }
        for run in &mut runs {
            while !text.is_char_boundary(run.0) {
                run.0 -= 1;
            }
            while !text.is_char_boundary(run.1) {
                run.1 += 1;
            }
        }
        // Widening can make neighbouring runs overlap; they become one mask, as any
        // overlapping occurrences do.
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(runs.len());
        for (start, end) in runs {
            match merged.last_mut() {
                Some(last) if start < last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        let bytes = splice(text.as_bytes(), &merged);
        // Every cut is at a character boundary and the mask is ASCII.
        Cow::Owned(String::from_utf8(bytes).expect("masking at char boundaries keeps UTF-8"))
    }

    /// A stream over this masker, for output that arrives in chunks.
    pub fn stream(&self) -> StreamMasker {
        StreamMasker::new(self.clone())
    }

    /// The stretches of `text` to mask: the union of all occurrences, as half-open byte
    /// ranges in order, each stretch of overlapping occurrences as one range.
    fn runs(&self, text: &[u8]) -> Vec<(usize, usize)> {
        let Some(searcher) = &self.searcher else {
            return Vec::new();
        };
        let mut found = occurrences(searcher, text, text.len());
        found.sort_unstable();
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for (start, end) in found {
            match runs.last_mut() {
                Some(last) if start < last.1 => last.1 = last.1.max(end),
                _ => runs.push((start, end)),
            }
        }
        runs
    }
}

/// Every occurrence in `text` that starts before `before`, as `(start, end)`, unordered.
fn occurrences(searcher: &AhoCorasick, text: &[u8], before: usize) -> Vec<(usize, usize)> {
    // Overlapping search only fails for non-standard match kinds or anchored searches, and
    // the searcher is built with the standard kind and searched unanchored.
    searcher
        .find_overlapping_iter(text)
        .map(|m| (m.start(), m.end()))
        .filter(|&(start, _)| start < before)
        .collect()
}

/// `text` with each range replaced by [`MASK`]; `runs` are ordered and disjoint.
fn splice(text: &[u8], runs: &[(usize, usize)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut at = 0;
    for &(start, end) in runs {
        out.extend_from_slice(&text[at..start]);
        out.extend_from_slice(MASK);
        at = end;
    }
    out.extend_from_slice(&text[at..]);
    out
}

/// Masks output that arrives in chunks, such as a step's stdout.
///
/// For any split of a text into chunks, the concatenation of what [`StreamMasker::push`]
/// returns followed by what [`StreamMasker::finish`] returns equals [`Masker::mask`] of the
/// whole text. It holds back at most [`Masker::longest_pattern`]` - 1` bytes that could be
/// the start of an occurrence split across chunks.
#[derive(Debug)]
pub struct StreamMasker {
    masker: Masker,
    /// The tail of the text that could still start an occurrence.
    pending: Vec<u8>,
    /// Where, in `pending`, the last mask written ends (0 when it ended before `pending`).
    /// An occurrence starting before it joins that mask, and the bytes before it are
    /// already accounted for in the output.
    masked_to: usize,
}

impl StreamMasker {
    /// A stream masking with `masker`.
    pub fn new(masker: Masker) -> Self {
        Self {
            masker,
            pending: Vec::new(),
            masked_to: 0,
        }
    }

    /// Takes the next chunk and returns the masked output that is final now. With an empty
    /// masker this is the chunk itself, borrowed.
    pub fn push<'c>(&mut self, chunk: &'c [u8]) -> Cow<'c, [u8]> {
        if self.masker.is_empty() {
            return Cow::Borrowed(chunk);
        }
        self.pending.extend_from_slice(chunk);
        // Every occurrence starting before `safe` lies wholly in `pending`, so everything
        // about those starts is known; a later one could still begin in the tail.
        let safe = self
            .pending
            .len()
            .saturating_sub(self.masker.longest.saturating_sub(1));
        Cow::Owned(self.settle(safe))
    }

    /// Ends the stream: returns the rest of the output, masked, and leaves the stream
    /// ready for a new text.
    pub fn finish(&mut self) -> Vec<u8> {
        let out = self.settle(self.pending.len());
        self.pending.clear();
        self.masked_to = 0;
        out
    }

    /// Writes out what the occurrences starting before `pending[safe]` decide, and drops
    /// `pending[..safe]`.
    fn settle(&mut self, safe: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(safe + MASK.len());
        let Some(searcher) = &self.masker.searcher else {
            out.extend_from_slice(&self.pending[..safe]);
            self.pending.drain(..safe);
            return out;
        };
        let mut found = occurrences(searcher, &self.pending, safe);
        found.sort_unstable();
        let mut masked_to = self.masked_to;
        for (start, end) in found {
            if start < masked_to {
                masked_to = masked_to.max(end);
                continue;
            }
            out.extend_from_slice(&self.pending[masked_to..start]);
            out.extend_from_slice(MASK);
            masked_to = end;
        }
        if masked_to < safe {
            out.extend_from_slice(&self.pending[masked_to..safe]);
        }
        self.pending.drain(..safe);
        self.masked_to = masked_to.saturating_sub(safe);
        out
    }
}

/// Adds to `set` the patterns that would betray `value`.
fn derive_patterns(value: &[u8], set: &mut BTreeSet<Vec<u8>>) {
    if value.len() < MIN_MASKED_LEN || value.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    let mut wholes = vec![value.to_vec()];
    if value.contains(&b'\n') {
        for line in value.split(|&b| b == b'\n') {
            add(set, line.strip_suffix(b"\r").unwrap_or(line).to_vec());
        }
        let lf = replace(value, b"\r\n", b"\n");
        let crlf = replace(&lf, b"\n", b"\r\n");
        wholes.push(lf);
        wholes.push(crlf);
    }
    for whole in wholes {
        for (padded, unpadded) in [(STANDARD, STANDARD_NO_PAD), (URL_SAFE, URL_SAFE_NO_PAD)] {
            base64_patterns(&whole, &padded, &unpadded, set);
        }
        for upper in [true, false] {
            for plus in [true, false] {
                add(set, percent_encode(&whole, upper, plus));
            }
        }
        add(set, json_escape(&whole));
        if let Some(ascii) = json_escape_ascii(&whole) {
            add(set, ascii);
        }
        add(set, whole);
    }
}

/// Keeps a pattern unless it is too short or only whitespace.
fn add(set: &mut BTreeSet<Vec<u8>>, pattern: Vec<u8>) {
    if pattern.len() >= MIN_MASKED_LEN && !pattern.iter().all(u8::is_ascii_whitespace) {
        set.insert(pattern);
    }
}

/// `text` with every `from` replaced by `to`.
fn replace(text: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if rest.starts_with(from) {
            out.extend_from_slice(to);
            rest = &rest[from.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}

/// The value's encodings on its own (padded and not), and at each alignment inside a
/// larger blob.
fn base64_patterns(
    value: &[u8],
    padded: &GeneralPurpose,
    unpadded: &GeneralPurpose,
    set: &mut BTreeSet<Vec<u8>>,
) {
    add(set, padded.encode(value).into_bytes());
    add(set, unpadded.encode(value).into_bytes());
    // Inside a blob, a value at offset 1 or 2 mod 3 shares its first 3-byte group with
    // bytes before it; the characters mixing those bytes' bits are dropped (2 and 3 of
    // them). Likewise the last character is dropped when the value ends mid-group, since
    // it mixes in the bits of whatever follows.
    for (filler, skip) in [(0, 0), (1, 2), (2, 3)] {
        let mut blob = vec![0u8; filler];
        blob.extend_from_slice(value);
        let encoded = unpadded.encode(&blob).into_bytes();
        let end = encoded.len() - usize::from(blob.len() % 3 != 0);
        if skip < end {
            add(set, encoded[skip..end].to_vec());
        }
    }
}

/// Percent-encoding of every byte outside RFC 3986's unreserved set; `plus` writes a space
/// as `+` (HTML form encoding).
fn percent_encode(value: &[u8], upper: bool, plus: bool) -> Vec<u8> {
    let digits: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut out = Vec::with_capacity(value.len() * 3);
    for &b in value {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else if plus && b == b' ' {
            out.push(b'+');
        } else {
            out.extend_from_slice(&[
                b'%',
                digits[usize::from(b >> 4)],
                digits[usize::from(b & 0xf)],
            ]);
        }
    }
    out
}

/// Escapes one ASCII byte as JSON does inside a string, if it needs escaping.
fn json_escape_byte(b: u8, out: &mut Vec<u8>) {
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        0x00..=0x1f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
        _ => out.push(b),
    }
}

/// The value inside a JSON string as most encoders write it (serde_json, JavaScript):
/// other characters are left as they are.
fn json_escape(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 8);
    for &b in value {
        json_escape_byte(b, &mut out);
    }
    out
}

/// The value inside a JSON string written in ASCII only (Python's default): characters
/// past ASCII as `\uXXXX`, in UTF-16 surrogate pairs past the BMP. `None` when the value
/// is not UTF-8 or is all ASCII (then it equals [`json_escape`]).
fn json_escape_ascii(value: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(value).ok()?;
    if text.is_ascii() {
        return None;
    }
    let mut out = Vec::with_capacity(value.len() * 2);
    for c in text.chars() {
        if c.is_ascii() {
            // An ASCII char is one byte, so the cast keeps it whole.
            json_escape_byte(c as u8, &mut out);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.extend_from_slice(format!("\\u{unit:04x}").as_bytes());
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn masker(secrets: &[&str]) -> Masker {
        Masker::new(secrets).expect("test secrets are small")
    }

    fn masked(m: &Masker, text: &str) -> String {
        String::from_utf8(m.mask(text.as_bytes()).into_owned()).expect("test text is UTF-8")
    }

    /// Output of a stream fed `text` cut at `cuts` (ascending positions).
    fn streamed(m: &Masker, text: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut stream = m.stream();
        let mut out = Vec::new();
        let mut at = 0;
        for &cut in cuts.iter().chain([text.len()].iter()) {
            out.extend_from_slice(&stream.push(&text[at..cut]));
            at = cut;
        }
        out.extend_from_slice(&stream.finish());
        out
    }

    #[test]
    fn no_secrets_leave_text_untouched_and_uncopied() {
        let m = Masker::new(Vec::<&str>::new()).unwrap();
        assert!(m.is_empty());
        let text = b"nothing to hide here\n";
        assert!(matches!(m.mask(text), Cow::Borrowed(t) if t == text));
        assert!(matches!(m.mask_str("plain"), Cow::Borrowed("plain")));
        let mut stream = m.stream();
        assert!(matches!(stream.push(text), Cow::Borrowed(t) if t == text));
        assert!(stream.finish().is_empty());
    }

    #[test]
    fn text_without_any_secret_is_borrowed_unchanged() {
        let m = masker(&["hunter22"]);
        let text = b"hunter2 is not the secret, nor is hunter 22";
        assert!(matches!(m.mask(text), Cow::Borrowed(t) if t == text));
    }

    #[test]
    fn every_plain_occurrence_is_masked() {
        let m = masker(&["hunter22", "tok-ABCDEF"]);
        assert_eq!(
            masked(&m, "pw=hunter22 token tok-ABCDEF, again hunter22."),
            "pw=*** token ***, again ***."
        );
    }

    #[test]
    fn touching_occurrences_are_masked_separately() {
        let m = masker(&["secret"]);
        assert_eq!(masked(&m, "secretsecret!"), "******!");
    }

    #[test]
    fn overlapping_occurrences_become_one_mask_leaving_no_byte_of_either() {
        let m = masker(&["abcdef", "defghi"]);
        assert_eq!(masked(&m, "<abcdefghi>"), "<***>");
        let m = masker(&["aaaa"]);
        assert_eq!(masked(&m, "baaaaaab"), "b***b");
    }

    #[test]
    fn short_and_blank_secrets_are_not_masked() {
        let m = masker(&["abc", "", "    ", "\t\n\r\n"]);
        assert!(m.is_empty());
        assert_eq!(masked(&m, "abc    abc"), "abc    abc");
        let m = masker(&["abcd"]);
        assert_eq!(masked(&m, "abc abcd"), "abc ***");
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let m = masker(&["hunter22"]);
        let shown = format!("{m:?} {:?}", m.stream());
        assert!(!shown.contains("hunter22"), "{shown}");
        assert!(shown.contains("patterns"), "{shown}");
    }

    /// Every base64 character of `blob` (encoded from `prefix + secret + suffix`) whose six
    /// bits all come from the secret must lie inside a mask.
    fn assert_secret_bits_masked(m: &Masker, prefix: usize, secret_len: usize, encoded: &[u8]) {
        let runs = m.runs(encoded);
        let (first_bit, end_bit) = (8 * prefix, 8 * (prefix + secret_len));
        for i in 0..encoded.len() {
            let pure = 6 * i >= first_bit && 6 * i + 6 <= end_bit;
            if pure {
                assert!(
                    runs.iter().any(|&(s, e)| s <= i && i < e),
                    "char {i} of {:?} (prefix {prefix}) is left visible",
                    String::from_utf8_lossy(encoded)
                );
            }
        }
    }

    #[test]
    fn base64_at_every_alignment_in_both_alphabets_is_masked() {
        // Bytes that encode to `+` and `/` (or `-` and `_`), so the alphabets differ.
        let binary: Vec<u8> = vec![0xfb, 0xff, 0xbf, 0xfe, 0x3e, 0x7f, 0xf8, 0x01];
        let secrets: Vec<Vec<u8>> = (4..=9)
            .map(|n| b"s3cr3t-val"[..n].to_vec())
            .chain((4..=8).map(|n| binary[..n].to_vec()))
            .collect();
        for secret in &secrets {
            let m = Masker::new([secret]).unwrap();
            for prefix in 0..6 {
                for suffix in 0..4 {
                    let mut blob = vec![b'x'; prefix];
                    blob.extend_from_slice(secret);
                    blob.extend(std::iter::repeat_n(b'y', suffix));
                    for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
                        let encoded = engine.encode(&blob).into_bytes();
                        assert_secret_bits_masked(&m, prefix, secret.len(), &encoded);
                    }
                }
            }
            // On its own, the whole encoding, padding included, goes.
            for engine in [STANDARD, URL_SAFE] {
                let line = format!("auth: {}\n", engine.encode(secret));
                assert_eq!(masked(&m, &line), "auth: ***\n", "{line:?}");
            }
        }
    }

    #[test]
    fn percent_encoded_forms_are_masked() {
        let m = masker(&["p@ss w/rd&x=1"]);
        for form in [
            "p%40ss%20w%2Frd%26x%3D1",
            "p%40ss%20w%2frd%26x%3d1",
            "p%40ss+w%2Frd%26x%3D1",
            "p%40ss+w%2frd%26x%3d1",
        ] {
            assert_eq!(
                masked(&m, &format!("https://u:{form}@host/")),
                "https://u:***@host/",
                "{form}"
            );
        }
    }

    #[test]
    fn secrets_inside_a_json_document_are_masked() {
        let secrets = [
            "plain-token-123",
            "quote\"and\\backslash",
            "tab\there\u{1}ctl\u{8}\u{c}",
            "multi\nline\r\nvalue",
            "ünïcødé-pässwörd",
            "emoji-😀-key",
        ];
        for secret in secrets {
            let m = masker(&[secret]);
            let doc = serde_json::to_string(&serde_json::json!({ "token": secret })).unwrap();
            assert_eq!(masked(&m, &doc), r#"{"token":"***"}"#, "{doc}");
        }
        // ASCII-only JSON, as Python writes it by default.
        let m = masker(&["pässwörd-😀"]);
        assert_eq!(
            masked(&m, r#"{"k": "p\u00e4ssw\u00f6rd-\ud83d\ude00"}"#),
            r#"{"k": "***"}"#
        );
    }

    #[test]
    fn multi_line_secret_is_masked_whole_by_line_and_with_either_line_end() {
        let key = "-----BEGIN KEY-----\nMIIEvQIBADANBg\nab\n-----END KEY-----\n";
        let m = masker(&[key]);
        assert_eq!(masked(&m, &format!("key:\n{key}done")), "key:\n***done");
        let crlf = key.replace('\n', "\r\n");
        assert_eq!(masked(&m, &format!("<{crlf}>")), "<***>");
        // Lines printed on their own; "ab" is too short to mask.
        assert_eq!(
            masked(&m, "line 2 is MIIEvQIBADANBg, line 3 is ab"),
            "line 2 is ***, line 3 is ab"
        );
        // A value stored with CRLF ends, printed with LF ones.
        let m = masker(&[crlf.as_str()]);
        assert_eq!(masked(&m, &format!("<{key}>")), "<***>");
        assert_eq!(masked(&m, "-----END KEY-----"), "***");
    }

    #[test]
    fn mask_str_widens_to_whole_characters() {
        // "é" is C3 A9; a secret that is not UTF-8 starts inside it.
        let m = Masker::new([[0xa9, b'a', b'b', b'c']]).unwrap();
        let text = "xéabc!";
        assert_eq!(&m.mask(text.as_bytes())[..], b"x\xc3***!");
        assert_eq!(m.mask_str(text), "x***!");
        let m = masker(&["héllo-wörld"]);
        assert_eq!(m.mask_str("say héllo-wörld!"), "say ***!");
    }

    #[test]
    fn stream_equals_whole_for_every_single_and_double_cut() {
        let secret = "tök€n-1234";
        let m = masker(&[secret, "abab-abab"]);
        let text = format!(
            "a {secret}{secret} b abab-abababab-abab {} tök€n-123 {} c",
            STANDARD.encode(secret),
            // The longest pattern, so some cut splits one just before its last byte.
            String::from_utf8(percent_encode(secret.as_bytes(), true, false)).unwrap(),
        );
        let text = text.as_bytes();
        let whole = m.mask(text).into_owned();
        assert_ne!(whole, text);
        for i in 0..=text.len() {
            assert_eq!(streamed(&m, text, &[i]), whole, "cut at {i}");
            for j in i..=text.len() {
                assert_eq!(streamed(&m, text, &[i, j]), whole, "cuts at {i}, {j}");
            }
        }
        // One byte at a time.
        let every: Vec<usize> = (1..text.len()).collect();
        assert_eq!(streamed(&m, text, &every), whole);
    }

    #[test]
    fn stream_holds_back_less_than_the_longest_pattern() {
        let m = masker(&["a-long-secret-value", "short"]);
        let held_max = m.longest_pattern() - 1;
        let text = b"ordinary output without secrets, line after line\n".repeat(20);
        let mut stream = m.stream();
        let (mut pushed, mut emitted) = (0, 0);
        for chunk in text.chunks(7) {
            pushed += chunk.len();
            emitted += stream.push(chunk).len();
            assert!(pushed - emitted <= held_max, "{pushed} in, {emitted} out");
        }
        emitted += stream.finish().len();
        assert_eq!(emitted, pushed);
    }

    #[test]
    fn finish_leaves_the_stream_ready_for_a_new_text() {
        let m = masker(&["secret-1"]);
        let mut stream = m.stream();
        let mut first = stream.push(b"xx secret-").into_owned();
        first.extend(stream.finish());
        assert_eq!(first, b"xx secret-");
        let mut second = stream.push(b"1 yy secret-1").into_owned();
        second.extend(stream.finish());
        assert_eq!(second, b"1 yy ***");
    }

    /// Secrets and noise over a small alphabet, so partial matches and overlaps are common.
    /// No `*`: a secret containing it could be pieced together around a mask.
    fn secret_strategy() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(prop::sample::select(b"ab\n\r +/=\"".to_vec()), 4..12)
    }

    fn text_strategy() -> impl Strategy<Value = (Vec<Vec<u8>>, Vec<u8>)> {
        proptest::collection::vec(secret_strategy(), 1..4).prop_flat_map(|secrets| {
            let piece = prop_oneof![
                proptest::collection::vec(prop::sample::select(b"ab\n\r +/=\"x".to_vec()), 0..8),
                prop::sample::select(secrets.clone()),
                prop::sample::select(secrets.clone()).prop_map(|s| STANDARD.encode(s).into()),
                prop::sample::select(secrets.clone()).prop_map(|s| URL_SAFE_NO_PAD
                    .encode([b"xy".as_slice(), &s].concat())
                    .into()),
                prop::sample::select(secrets.clone()).prop_map(|s| percent_encode(&s, true, true)),
                prop::sample::select(secrets.clone()).prop_map(|s| json_escape(&s)),
            ];
            let text = proptest::collection::vec(piece, 0..12).prop_map(|p| p.concat());
            (Just(secrets), text)
        })
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_whole_text_masking(
            (secrets, text) in text_strategy(),
            mut cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let m = Masker::new(&secrets).unwrap();
            let mut cuts: Vec<usize> = cuts.drain(..).map(|i| i.index(text.len() + 1)).collect();
            cuts.sort_unstable();
            prop_assert_eq!(streamed(&m, &text, &cuts), m.mask(&text).into_owned());
        }

        #[test]
        fn no_secret_survives_masking((secrets, text) in text_strategy()) {
            let m = Masker::new(&secrets).unwrap();
            let out = m.mask(&text);
            for secret in secrets.iter().filter(|s| !s.iter().all(u8::is_ascii_whitespace)) {
                let hit = out.windows(secret.len()).any(|w| w == secret.as_slice());
                prop_assert!(!hit, "{:?} survives in {:?}", secret, String::from_utf8_lossy(&out));
            }
        }

        #[test]
        fn mask_str_keeps_any_text_valid(
            secrets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..8), 0..4),
            text in "\\PC{0,40}",
        ) {
            let m = Masker::new(&secrets).unwrap();
            let out = m.mask_str(&text);
            // Where the byte masking kept UTF-8, widening changes nothing.
            if let Ok(bytes) = std::str::from_utf8(&m.mask(text.as_bytes())) {
                prop_assert_eq!(out.as_ref(), bytes);
            }
        }
    }
}
