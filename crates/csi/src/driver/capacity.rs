//! Capacity decisions as pure functions: what size a CreateVolume gets, whether an existing
//! volume satisfies a `CapacityRange`, and whether a size fits in what the driver has left.

use super::Error;
use crate::v1::CapacityRange;

/// The capacity of a volume whose CreateVolume gives no `required_bytes` (the spec leaves it to
/// the plugin; 1 GiB like most provisioners' default).
pub const DEFAULT_CAPACITY_BYTES: i64 = 1 << 30;

/// A checked `CapacityRange`: both bounds non-negative, 0 meaning unset, the limit (when set)
/// not below the requirement.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Range {
    pub required: i64,
    pub limit: i64,
}

impl Range {
    /// Checks `range` (the request field named `field`); `None` is an unset range.
    pub fn parse(range: Option<&CapacityRange>, field: &str) -> Result<Self, Error> {
        let Some(range) = range else {
            return Ok(Self::default());
        };
        if range.required_bytes < 0 || range.limit_bytes < 0 {
            return Err(Error::InvalidArgument(format!(
                "{field}: required_bytes and limit_bytes must not be negative"
            )));
        }
        if range.limit_bytes > 0 && range.limit_bytes < range.required_bytes {
            return Err(Error::InvalidArgument(format!(
                "{field}: limit_bytes {} is below required_bytes {}",
                range.limit_bytes, range.required_bytes
            )));
        }
        Ok(Self {
            required: range.required_bytes,
            limit: range.limit_bytes,
        })
    }

    /// The size a new volume gets: the requirement, else the default held to the limit.
    pub fn size_for_create(self) -> i64 {
        match (self.required, self.limit) {
            (0, 0) => DEFAULT_CAPACITY_BYTES,
            (0, limit) => DEFAULT_CAPACITY_BYTES.min(limit),
            (required, _) => required,
        }
    }

    /// Whether a volume of `capacity` bytes is within the range.
    pub fn admits(self, capacity: i64) -> bool {
        capacity >= self.required && (self.limit == 0 || capacity <= self.limit)
    }

    /// The size an expansion asks for: the requirement, else the limit; `None` when neither is
    /// set.
    pub fn expansion_target(self) -> Option<i64> {
        match (self.required, self.limit) {
            (0, 0) => None,
            (0, limit) => Some(limit),
            (required, _) => Some(required),
        }
    }
}

/// Whether `growth` more bytes fit in a driver of `total` bytes (`None`: no limit) of which
/// `allocated` are given to volumes. A volume larger than the whole is OUT_OF_RANGE (no retry
/// helps); one larger than what is left is RESOURCE_EXHAUSTED (deleting volumes may help, and
/// the external-provisioner then reschedules a delayed-binding claim elsewhere).
pub(crate) fn check_fits(
    total: Option<i64>,
    allocated: i64,
    volume_size: i64,
    growth: i64,
) -> Result<(), Error> {
    let Some(total) = total else {
        return Ok(());
    };
    if volume_size > total {
        return Err(Error::OutOfRange(format!(
            "{volume_size} bytes is more than the driver's whole capacity of {total} bytes"
        )));
    }
    let left = (total - allocated).max(0);
    if growth > left {
        return Err(Error::ResourceExhausted(format!(
            "{growth} more bytes are needed but only {left} of {total} bytes are left"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(required_bytes: i64, limit_bytes: i64) -> Option<CapacityRange> {
        Some(CapacityRange {
            required_bytes,
            limit_bytes,
        })
    }

    #[test]
    fn ranges() {
        // (range, size for create, admits 100, expansion target)
        let cases = [
            (None, DEFAULT_CAPACITY_BYTES, true, None),
            (range(0, 0), DEFAULT_CAPACITY_BYTES, true, None),
            (range(100, 0), 100, true, Some(100)),
            (range(50, 200), 50, true, Some(50)),
            (range(0, 10), 10, false, Some(10)),
            (range(101, 0), 101, false, Some(101)),
            (range(100, 100), 100, true, Some(100)),
        ];
        for (input, size, admits_100, target) in cases {
            let parsed = Range::parse(input.as_ref(), "capacity_range").expect("valid");
            assert_eq!(parsed.size_for_create(), size, "{input:?}");
            assert_eq!(parsed.admits(100), admits_100, "{input:?}");
            assert_eq!(parsed.expansion_target(), target, "{input:?}");
        }
        for bad in [range(-1, 0), range(0, -1), range(10, 5)] {
            let err = Range::parse(bad.as_ref(), "capacity_range").expect_err("invalid");
            assert!(matches!(err, Error::InvalidArgument(_)), "{bad:?}: {err:?}");
        }
    }

    #[test]
    fn fits() {
        assert!(check_fits(None, i64::MAX, i64::MAX, i64::MAX).is_ok());
        assert!(check_fits(Some(100), 60, 40, 40).is_ok());
        assert!(matches!(
            check_fits(Some(100), 61, 40, 40),
            Err(Error::ResourceExhausted(_))
        ));
        assert!(matches!(
            check_fits(Some(100), 0, 101, 101),
            Err(Error::OutOfRange(_))
        ));
        // Growing a 50-byte volume to 90 needs 40 more.
        assert!(check_fits(Some(100), 60, 90, 40).is_ok());
        // Over-allocated (the total was lowered since): nothing is left, nothing negative.
        assert!(matches!(
            check_fits(Some(100), 150, 10, 10),
            Err(Error::ResourceExhausted(_))
        ));
    }
}
