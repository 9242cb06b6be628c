//! Human units for the text outputs.

/// 1234 -> "1.2k", 1_500_000 -> "1.5M".
pub fn count(n: u64) -> String {
    si(n as f64, "")
}

pub fn rate_pkts(pps: f64) -> String {
    si(pps, "")
}

/// Bits per second: "2.00M" means 2 Mbit/s.
pub fn rate_bits(bps: f64) -> String {
    if bps < 1000.0 {
        return format!("{bps:.0}");
    }
    let (v, unit) = scale(bps, 1000.0);
    format!("{v:.2}{unit}")
}

/// Binary byte sizes: "146.5KiB".
pub fn bytes(n: u64) -> String {
    if n < 1024 {
        return format!("{n}B");
    }
    let (v, unit) = scale(n as f64, 1024.0);
    format!("{v:.1}{unit}iB")
}

fn si(v: f64, suffix: &str) -> String {
    if v < 1000.0 {
        return format!("{v:.0}{suffix}");
    }
    let (v, unit) = scale(v, 1000.0);
    format!("{v:.1}{unit}{suffix}")
}

fn scale(mut v: f64, base: f64) -> (f64, &'static str) {
    let mut unit = "";
    for u in ["k", "M", "G", "T", "P"] {
        if v < base {
            break;
        }
        v /= base;
        unit = u;
    }
    let unit = if base == 1024.0 && unit == "k" {
        "K"
    } else {
        unit
    };
    (v, unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(count(999), "999");
        assert_eq!(count(1500), "1.5k");
        assert_eq!(count(2_500_000), "2.5M");
        assert_eq!(rate_bits(512.0), "512");
        assert_eq!(rate_bits(2_000_000.0), "2.00M");
        assert_eq!(rate_bits(14.2e9), "14.20G");
        assert_eq!(bytes(100), "100B");
        assert_eq!(bytes(150_000), "146.5KiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024), "3.0GiB");
    }
}
