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

/// Packets per second with its unit: "12.3k/s".
pub fn pps(pps: f64) -> String {
    format!("{}/s", rate_pkts(pps))
}

/// Bits per second in network units: "512 bps", "840 Kbps", "1.05 Gbps" (three significant
/// digits, so the width stays put as the rate moves).
pub fn bitrate(bps: f64) -> String {
    if bps < 999.5 {
        return format!("{bps:.0} bps");
    }
    let (v, unit) = scale(three_significant(bps), 1000.0);
    let unit = if unit == "k" { "K" } else { unit };
    format!("{} {unit}bps", three_digits(v))
}

/// A duration in microseconds: "850µs", "12.4ms", "1.50s".
pub fn micros(us: u64) -> String {
    let rounded = three_significant(us as f64);
    match rounded {
        ..1e3 => format!("{us}µs"),
        ..1e6 => format!("{}ms", three_digits(rounded / 1e3)),
        _ => format!("{}s", three_digits(rounded / 1e6)),
    }
}

/// An uptime: "42s", "3m07s", "2h05m", "3d04h".
pub fn uptime(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// `part` as a percentage of `whole` with one decimal; 0 when `whole` is 0.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0.0".into();
    }
    format!("{:.1}", part as f64 * 100.0 / whole as f64)
}

/// `v` rounded to three significant digits, so 999.7k becomes 1.00M, not "1000k".
fn three_significant(v: f64) -> f64 {
    if v <= 0.0 {
        return 0.0;
    }
    let step = 10f64.powi(v.log10().floor() as i32 - 2);
    (v / step).round() * step
}

fn three_digits(v: f64) -> String {
    if v >= 99.95 {
        format!("{v:.0}")
    } else if v >= 9.995 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn si(v: f64, suffix: &str) -> String {
    // -0.0 (an empty float sum) would print as "-0".
    let v = v + 0.0;
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

    #[test]
    fn dashboard_units() {
        assert_eq!(pps(0.0), "0/s");
        assert_eq!(pps(-0.0), "0/s");
        assert_eq!(pps(12_345.0), "12.3k/s");
        assert_eq!(bitrate(512.0), "512 bps");
        assert_eq!(bitrate(840_000.0), "840 Kbps");
        assert_eq!(bitrate(12_340_000.0), "12.3 Mbps");
        assert_eq!(bitrate(1_050_000_000.0), "1.05 Gbps");
        assert_eq!(micros(850), "850µs");
        assert_eq!(micros(12_400), "12.4ms");
        assert_eq!(micros(1_500_000), "1.50s");
        assert_eq!(micros(999_700), "1.00s", "no 1000ms");
        assert_eq!(bitrate(999_700.0), "1.00 Mbps", "no 1000 Kbps");
        assert_eq!(uptime(42_900), "42s");
        assert_eq!(uptime(187_000), "3m07s");
        assert_eq!(uptime(7_500_000), "2h05m");
        assert_eq!(uptime(273_600_000), "3d04h");
        assert_eq!(percent(1, 3), "33.3");
        assert_eq!(percent(5, 0), "0.0");
    }
}
