//! YAML 1.2 core-schema typing of plain scalars, and the words messages use for types.

use super::tree::{Node, Scalar, Value};

/// What a scalar means under the YAML 1.2 core schema.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Typed<'s> {
    Null,
    Bool(bool),
    Int(i64),
    /// An integer too large for `i64` but within `u64`.
    UInt(u64),
    Float(f64),
    Str(&'s str),
}

impl Scalar<'_> {
    /// The core-schema value of this scalar; quoted scalars are always strings.
    pub(crate) fn typed(&self) -> Typed<'_> {
        let t = self.text.as_ref();
        if !self.plain {
            return Typed::Str(t);
        }
        match t {
            "" | "~" | "null" | "Null" | "NULL" => return Typed::Null,
            "true" | "True" | "TRUE" => return Typed::Bool(true),
            "false" | "False" | "FALSE" => return Typed::Bool(false),
            _ => {}
        }
        if let Some(n) = int(t) {
            return n;
        }
        float(t).map_or(Typed::Str(t), Typed::Float)
    }

    /// True for `~`, `null` and the empty plain scalar.
    pub(crate) fn is_null(&self) -> bool {
        self.typed() == Typed::Null
    }
}

fn int(t: &str) -> Option<Typed<'static>> {
    let (neg, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let (radix, digits) = if let Some(hex) = t.strip_prefix("0x") {
        (16, hex)
    } else if let Some(oct) = t.strip_prefix("0o") {
        (8, oct)
    } else {
        (10, digits)
    };
    let valid = |c: char| c.is_digit(radix);
    if digits.is_empty() || !digits.chars().all(valid) {
        return None;
    }
    // The core schema allows a sign on decimal integers only.
    if radix != 10 && (neg || t.starts_with('+')) {
        return None;
    }
    let magnitude = u128::from_str_radix(digits, radix).ok();
    Some(match magnitude {
        Some(m) if neg && m <= i64::MAX as u128 + 1 => {
            Typed::Int((m as i128).wrapping_neg() as i64)
        }
        Some(m) if !neg && m <= i64::MAX as u128 => Typed::Int(m as i64),
        Some(m) if !neg && m <= u64::MAX as u128 => Typed::UInt(m as u64),
        // Out of range of JSON's exact integers: keep the value as a float.
        _ => Typed::Float(t.parse().ok()?),
    })
}

fn float(t: &str) -> Option<f64> {
    let unsigned = t.strip_prefix(['-', '+']).unwrap_or(t);
    match unsigned {
        ".inf" | ".Inf" | ".INF" => {
            return Some(if t.starts_with('-') {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            });
        }
        ".nan" | ".NaN" | ".NAN" if unsigned.len() == t.len() => return Some(f64::NAN),
        _ => {}
    }
    // [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
    let b = unsigned.as_bytes();
    let mut i = 0;
    let int_digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    i += int_digits;
    let mut frac_digits = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        frac_digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        i += frac_digits;
    }
    if int_digits == 0 && frac_digits == 0 {
        return None;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        let exp = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if exp == 0 {
            return None;
        }
        i += exp;
    }
    if i != b.len() {
        return None;
    }
    t.parse().ok()
}

impl Node<'_> {
    /// The type of this value in words, for "found …" in messages.
    pub(crate) fn kind(&self) -> &'static str {
        match &self.value {
            Value::Map(_) => "a mapping",
            Value::Seq(_) => "a list",
            Value::Scalar(s) => match s.typed() {
                Typed::Null => "null",
                Typed::Bool(_) => "a boolean",
                Typed::Int(_) | Typed::UInt(_) | Typed::Float(_) => "a number",
                Typed::Str(_) => "a string",
            },
        }
    }

    /// True when the value is null (`~`, `null`, or nothing at all).
    pub(crate) fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar(s) if s.is_null())
    }

    /// The text of a non-null scalar: where the format wants a string, any scalar is taken
    /// as written (`PORT: 8080` is `"8080"`).
    pub(crate) fn text(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(s) if !s.is_null() => Some(&s.text),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn plain(t: &str) -> String {
        let s = Scalar {
            text: Cow::Borrowed(t),
            plain: true,
        };
        format!("{:?}", s.typed())
    }

    fn is(t: Typed<'_>) -> String {
        format!("{t:?}")
    }

    #[test]
    fn core_schema_types() {
        assert_eq!(plain(""), is(Typed::Null));
        assert_eq!(plain("~"), is(Typed::Null));
        assert_eq!(plain("NULL"), is(Typed::Null));
        assert_eq!(plain("True"), is(Typed::Bool(true)));
        assert_eq!(plain("false"), is(Typed::Bool(false)));
        assert_eq!(plain("yes"), is(Typed::Str("yes")));
        assert_eq!(plain("on"), is(Typed::Str("on")));
        assert_eq!(plain("8080"), is(Typed::Int(8080)));
        assert_eq!(plain("-12"), is(Typed::Int(-12)));
        assert_eq!(plain("+7"), is(Typed::Int(7)));
        assert_eq!(plain("0x1F"), is(Typed::Int(31)));
        assert_eq!(plain("0o17"), is(Typed::Int(15)));
        assert_eq!(plain("-9223372036854775808"), is(Typed::Int(i64::MIN)));
        assert_eq!(plain("18446744073709551615"), is(Typed::UInt(u64::MAX)));
        assert_eq!(plain("1.5"), is(Typed::Float(1.5)));
        assert_eq!(plain(".5"), is(Typed::Float(0.5)));
        assert_eq!(plain("1e3"), is(Typed::Float(1000.0)));
        assert_eq!(plain("2."), is(Typed::Float(2.0)));
        assert_eq!(plain("-.inf"), is(Typed::Float(f64::NEG_INFINITY)));
        assert_eq!(plain("1.2.3"), is(Typed::Str("1.2.3")));
        assert_eq!(plain("0x"), is(Typed::Str("0x")));
        assert_eq!(plain("1e"), is(Typed::Str("1e")));
        assert_eq!(plain("."), is(Typed::Str(".")));
        assert_eq!(plain("10m"), is(Typed::Str("10m")));
        let quoted = Scalar {
            text: Cow::Borrowed("8080"),
            plain: false,
        };
        assert_eq!(quoted.typed(), Typed::Str("8080"));
    }
}
