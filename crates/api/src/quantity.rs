//! Resource quantities (`100m`, `1.5`, `128Mi`, `1G`, `1e3`) parsed as upstream's
//! `resource.ParseQuantity` does, for the arithmetic every component needs: CPU in millicores
//! for shares and CFS quota, memory in bytes for limits, exact comparison for the QoS class.
//!
//! A [`Quantity`] holds its value in nano-units (10⁻⁹, upstream's smallest scale) as an `i128`,
//! which is exact for every suffix upstream accepts and far wider than the `int64` range upstream
//! clamps to. Like upstream, precision finer than a nano-unit is rounded up.

use std::fmt;

/// Nano-units per unit.
const NANO: i128 = 1_000_000_000;

/// A parsed resource quantity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity {
    nanos: i128,
}

/// Why a string is not a quantity; the messages are upstream's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The number part is malformed (upstream `ErrFormatWrong`).
    #[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
    Format,
    /// The suffix is not one of the known ones (upstream `ErrSuffix`).
    #[error("unable to parse quantity's suffix")]
    Suffix,
    /// The value does not fit (far beyond anything upstream can represent as an int64).
    #[error("quantity is too large")]
    Overflow,
}

impl Quantity {
    /// Zero.
    pub const ZERO: Quantity = Quantity { nanos: 0 };

    /// Parses a quantity string as upstream's `resource.ParseQuantity`.
    pub fn parse(input: &str) -> Result<Quantity, QuantityError> {
        let text = input;
        if text.is_empty() {
            return Err(QuantityError::Format);
        }
        let bytes = text.as_bytes();
        let mut pos = 0;
        let mut negative = false;
        match bytes[0] {
            b'-' => {
                negative = true;
                pos = 1;
            }
            b'+' => pos = 1,
            _ => {}
        }
        let int_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        let integer = &text[int_start..pos];
        let mut fraction = "";
        if pos < bytes.len() && bytes[pos] == b'.' {
            pos += 1;
            let frac_start = pos;
            while pos < bytes.len() && bytes[pos].is_ascii_digit() {
                pos += 1;
            }
            fraction = &text[frac_start..pos];
        }
        // No digits at all ("-", "Mi") is zero, as upstream's scanner has it.
        let suffix = &text[pos..];
        // Upstream's scanner: suffix letters, then an optional sign and digits, nothing else.
        let letters_end = suffix
            .find(|c: char| !"eEinumkKMGTP".contains(c))
            .unwrap_or(suffix.len());
        let rest = &suffix[letters_end..];
        let rest_digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
        if !rest_digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(QuantityError::Format);
        }

        // mantissa = integer.fraction as an integer, scaled by 10^-len(fraction).
        let mut mantissa: i128 = 0;
        for b in integer.bytes().chain(fraction.bytes()) {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(i128::from(b - b'0')))
                .ok_or(QuantityError::Overflow)?;
        }
        let fraction_digits = i32::try_from(fraction.len()).map_err(|_| QuantityError::Overflow)?;

        let (binary_shift, decimal_exp) = interpret_suffix(suffix)?;
        let mut value = mantissa;
        if binary_shift > 0 {
            value = value
                .checked_mul(1i128 << binary_shift)
                .ok_or(QuantityError::Overflow)?;
        }
        // value * 10^(9 + decimal_exp - fraction_digits) nanos.
        let scale = 9 + decimal_exp - fraction_digits;
        let nanos = if scale >= 0 {
            let factor = pow10(scale)?;
            value.checked_mul(factor).ok_or(QuantityError::Overflow)?
        } else if -scale > 38 {
            // Smaller than any nano-unit: rounds up to one nano if non-zero.
            i128::from(value != 0)
        } else {
            let divisor = pow10(-scale)?;
            // Round up (towards +inf for the magnitude; sign applied below), as upstream.
            (value + divisor - 1) / divisor
        };
        Ok(Quantity {
            nanos: if negative { -nanos } else { nanos },
        })
    }

    /// Parses an API quantity (`k8s_openapi` wraps the string).
    pub fn from_api(
        quantity: &k8s_openapi::apimachinery::pkg::api::resource::Quantity,
    ) -> Result<Quantity, QuantityError> {
        Quantity::parse(&quantity.0)
    }

    /// A quantity of `millis` thousandths of a unit.
    pub fn from_milli(millis: i64) -> Quantity {
        Quantity {
            nanos: i128::from(millis) * 1_000_000,
        }
    }

    /// A quantity of whole units.
    pub fn from_units(units: i64) -> Quantity {
        Quantity {
            nanos: i128::from(units) * NANO,
        }
    }

    /// The value in nano-units.
    pub fn nanos(&self) -> i128 {
        self.nanos
    }

    /// Whether the value is zero.
    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// The value in thousandths, rounded up as upstream's `MilliValue` (`ceil(q * 1000)`), clamped
    /// to the `i64` range.
    pub fn milli_value(&self) -> i64 {
        clamp_i64(div_ceil(self.nanos, 1_000_000))
    }

    /// The value in whole units, rounded away from zero as upstream's `Value`, clamped to `i64`.
    pub fn value(&self) -> i64 {
        let units = if self.nanos >= 0 {
            div_ceil(self.nanos, NANO)
        } else {
            -div_ceil(-self.nanos, NANO)
        };
        clamp_i64(units)
    }
}

/// How a quantity is written (upstream's `resource.Format`): sums keep the format of their first
/// operand, and [`Quantity::canonical`] writes a value back in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Format {
    /// Powers of ten with SI suffixes: `500m`, `2`, `1k`, `100M`.
    #[default]
    DecimalSi,
    /// Powers of two: `128Mi`, `1Gi`.
    BinarySi,
    /// Scientific notation: `1e3`.
    DecimalExponent,
}

impl Format {
    /// The format of a quantity string, from its suffix as upstream's parser decides it.
    pub fn of(input: &str) -> Format {
        let suffix = input.trim_start_matches(['+', '-']);
        let suffix = suffix.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
        if suffix.ends_with('i') {
            Format::BinarySi
        } else if suffix.len() > 1 && suffix.starts_with(['e', 'E']) {
            Format::DecimalExponent
        } else {
            Format::DecimalSi
        }
    }
}

impl Quantity {
    /// The value written as upstream's `Quantity.String()` writes it in `format`: the largest
    /// suffix that keeps the number whole (`1500m`, `1k`, `128Mi`); binary values below 1024 or
    /// not whole fall back to decimal.
    pub fn canonical(&self, format: Format) -> String {
        if self.nanos == 0 {
            return "0".into();
        }
        let sign = if self.nanos < 0 { "-" } else { "" };
        let magnitude = self.nanos.unsigned_abs();
        let nano = NANO.unsigned_abs();
        if format == Format::BinarySi && magnitude >= 1024 * nano && magnitude.is_multiple_of(nano)
        {
            const SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
            let mut units = magnitude / nano;
            let mut power = 0;
            while power + 1 < SUFFIXES.len() && units.is_multiple_of(1024) {
                units /= 1024;
                power += 1;
            }
            return format!("{sign}{units}{}", SUFFIXES[power]);
        }
        // mantissa × 10^exponent, exponent a multiple of 3 as large as keeps mantissa whole.
        let mut mantissa = magnitude;
        let mut exponent = -9;
        while mantissa.is_multiple_of(1000) && exponent < 18 {
            mantissa /= 1000;
            exponent += 3;
        }
        if format == Format::DecimalExponent {
            return match exponent {
                0 => format!("{sign}{mantissa}"),
                e => format!("{sign}{mantissa}e{e}"),
            };
        }
        let suffix = match exponent {
            -9 => "n",
            -6 => "u",
            -3 => "m",
            0 => "",
            3 => "k",
            6 => "M",
            9 => "G",
            12 => "T",
            15 => "P",
            _ => "E",
        };
        format!("{sign}{mantissa}{suffix}")
    }
}

impl std::ops::Sub for Quantity {
    type Output = Quantity;

    /// The difference (saturating).
    fn sub(self, other: Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_sub(other.nanos),
        }
    }
}

impl std::ops::Add for Quantity {
    type Output = Quantity;

    /// The sum (saturating).
    fn add(self, other: Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_add(other.nanos),
        }
    }
}

impl fmt::Display for Quantity {
    /// Shown in nano-units with an `n` suffix when not whole, else as whole units: meant for
    /// messages and tests, not upstream's canonical form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos % NANO == 0 {
            write!(f, "{}", self.nanos / NANO)
        } else {
            write!(f, "{}n", self.nanos)
        }
    }
}

/// Upstream's suffixes: returns (power of two, power of ten).
fn interpret_suffix(suffix: &str) -> Result<(u32, i32), QuantityError> {
    let known = match suffix {
        "" => Some((0, 0)),
        "n" => Some((0, -9)),
        "u" => Some((0, -6)),
        "m" => Some((0, -3)),
        "k" => Some((0, 3)),
        "M" => Some((0, 6)),
        "G" => Some((0, 9)),
        "T" => Some((0, 12)),
        "P" => Some((0, 15)),
        "E" => Some((0, 18)),
        "Ki" => Some((10, 0)),
        "Mi" => Some((20, 0)),
        "Gi" => Some((30, 0)),
        "Ti" => Some((40, 0)),
        "Pi" => Some((50, 0)),
        "Ei" => Some((60, 0)),
        _ => None,
    };
    if let Some(known) = known {
        return Ok(known);
    }
    // Decimal exponent: e<int> or E<int>.
    let exponent = suffix
        .strip_prefix(['e', 'E'])
        .ok_or(QuantityError::Suffix)?;
    let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QuantityError::Suffix);
    }
    let exp: i32 = exponent.parse().map_err(|_| QuantityError::Overflow)?;
    if exp.abs() > 60 {
        return Err(QuantityError::Overflow);
    }
    Ok((0, exp))
}

fn pow10(exp: i32) -> Result<i128, QuantityError> {
    let exp = u32::try_from(exp).map_err(|_| QuantityError::Overflow)?;
    10i128.checked_pow(exp).ok_or(QuantityError::Overflow)
}

fn div_ceil(value: i128, divisor: i128) -> i128 {
    let quotient = value / divisor;
    if value % divisor > 0 {
        quotient + 1
    } else {
        quotient
    }
}

fn clamp_i64(value: i128) -> i64 {
    i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_upstream() {
        // (input, milli_value, value)
        let cases: &[(&str, i64, i64)] = &[
            ("0", 0, 0),
            ("000", 0, 0),
            ("100m", 100, 1),
            ("1.5", 1500, 2),
            ("2", 2000, 2),
            (".5", 500, 1),
            ("1.", 1000, 1),
            ("0.1", 100, 1),
            ("1n", 1, 1),
            ("1500u", 2, 1),
            ("128Mi", 128 * 1024 * 1024 * 1000, 128 * 1024 * 1024),
            ("1Gi", (1 << 30) * 1000, 1 << 30),
            ("Mi", 0, 0),
            ("1.5Gi", 1_610_612_736_000, 1_610_612_736),
            ("1G", 1_000_000_000_000, 1_000_000_000),
            ("1e3", 1_000_000, 1000),
            ("1E3", 1_000_000, 1000),
            ("1e-3", 1, 1),
            ("1e+3", 1_000_000, 1000),
            ("500k", 500_000_000, 500_000),
            ("64Ki", 65_536_000, 65_536),
            ("+3", 3000, 3),
            ("-1", -1000, -1),
            ("-1.5", -1500, -2),
            ("12345678901234m", 12_345_678_901_234, 12_345_678_902),
        ];
        for (input, milli, value) in cases {
            let q = Quantity::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(q.milli_value(), *milli, "milli of {input}");
            assert_eq!(q.value(), *value, "value of {input}");
        }
    }

    #[test]
    fn rejects_what_upstream_rejects() {
        let cases: &[(&str, QuantityError)] = &[
            ("", QuantityError::Format),
            ("1MB", QuantityError::Format),
            ("1K", QuantityError::Suffix),
            ("1mi", QuantityError::Suffix),
            ("1e", QuantityError::Suffix),
            ("1Gi2", QuantityError::Suffix),
            ("1 Gi", QuantityError::Format),
            ("abc", QuantityError::Format),
        ];
        for (input, want) in cases {
            assert_eq!(Quantity::parse(input), Err(want.clone()), "{input}");
        }
    }

    #[test]
    fn writes_back_as_upstream_writes() {
        let cases: &[(&str, &str)] = &[
            ("0", "0"),
            ("0Mi", "0"),
            ("1500m", "1500m"),
            ("1.5", "1500m"),
            ("2000m", "2"),
            ("1000", "1k"),
            ("1500", "1500"),
            ("0.1", "100m"),
            ("100M", "100M"),
            ("1e3", "1e3"),
            ("1500e-3", "1500e-3"),
            ("128Mi", "128Mi"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("512Ki", "512Ki"),
            ("1000Ki", "1000Ki"),
            ("0.5Ki", "512"),
            ("0.5Mi", "512Ki"),
            ("-1Gi", "-1Gi"),
            ("-500m", "-500m"),
            ("1n", "1n"),
            ("1E", "1E"),
            ("2E", "2E"),
        ];
        for (input, want) in cases {
            let q = Quantity::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(q.canonical(Format::of(input)), *want, "{input}");
        }
        let one_k = Quantity::from_units(1000);
        assert_eq!(
            one_k.canonical(Format::BinarySi),
            "1k",
            "not a power of two"
        );
        assert_eq!(
            (Quantity::from_units(1 << 30) - Quantity::from_units(512 << 20))
                .canonical(Format::BinarySi),
            "512Mi"
        );
    }

    #[test]
    fn compares_exactly_across_suffixes() {
        let q = |s: &str| Quantity::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(q("1"), q("1000m"));
        assert_eq!(q("1Ki"), q("1024"));
        assert_eq!(q("1k"), q("1e3"));
        assert!(q("1Mi") > q("1M"));
        assert!(q("0.0001") > q("0"));
        assert_eq!(q("100m") + q("900m"), q("1"));
        assert!(q("0m").is_zero());
    }
}
