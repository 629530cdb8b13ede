//! `created_at`: device time as exactly `YYYY-MM-DDTHH:MM:SS.sssZ` (UTC).

/// First millisecond of year 0000 and last of year 9999, the range the
/// fixed four-digit year can express.
const MIN_MS: i64 = -62_167_219_200_000;
const MAX_MS: i64 = 253_402_300_799_999;

/// Formats Unix milliseconds, clamped to years 0000–9999.
pub fn format_ms(ms: i64) -> String {
    let ms = ms.clamp(MIN_MS, MAX_MS);
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

/// Parses the exact format back into Unix milliseconds.
pub fn parse_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 24
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'.'
        || b[23] != b'Z'
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        b[from..to].iter().try_fold(0i64, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
        })
    };
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, s, ms) = (num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 23)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400_000 + ((h * 60 + mi) * 60 + s) * 1000 + ms)
}

/// Parses an HTTP date in its preferred form (RFC 9110 IMF-fixdate,
/// `Sun, 06 Nov 1994 08:49:37 GMT`) into Unix milliseconds, as sent in
/// `Retry-After` by proxies and load balancers.
pub fn parse_http_date(text: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let parts: Vec<&str> = text.trim().split(' ').collect();
    let [day, d, mon, y, time, "GMT"] = parts[..] else {
        return None;
    };
    let day = day.strip_suffix(',')?;
    let digits = |s: &str, n: usize| -> Option<i64> {
        (s.len() == n && s.bytes().all(|c| c.is_ascii_digit())).then(|| s.parse().ok())?
    };
    let (d, y) = (digits(d, 2)?, digits(y, 4)?);
    let m = MONTHS.iter().position(|x| *x == mon)? as i64 + 1;
    let t: Vec<&str> = time.split(':').collect();
    let [h, mi, s] = t[..] else { return None };
    let (h, mi, s) = (digits(h, 2)?, digits(mi, 2)?, digits(s, 2)?);
    if d < 1 || d > days_in_month(y, m) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(y, m, d);
    // 1970-01-01 was a Thursday: the weekday must agree with the date.
    if DAYS[(days + 3).rem_euclid(7) as usize] != day {
        return None;
    }
    Some(days * 86_400_000 + ((h * 60 + mi) * 60 + s.min(59)) * 1000)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's civil calendar algorithms (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_http_dates() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777_000)
        );
        assert_eq!(
            parse_http_date("Tue, 01 Dec 2026 06:00:00 GMT"),
            Some(1_796_104_800_000)
        );
        for bad in [
            "Mon, 06 Nov 1994 08:49:37 GMT",  // wrong weekday
            "Sunday, 06-Nov-94 08:49:37 GMT", // obsolete RFC 850 form
            "Sun Nov  6 08:49:37 1994",       // asctime
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_and_parses_known_instants() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (1_700_000_000_123, "2023-11-14T22:13:20.123Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
            (MAX_MS, "9999-12-31T23:59:59.999Z"),
            (MIN_MS, "0000-01-01T00:00:00.000Z"),
        ];
        for (ms, text) in cases {
            assert_eq!(format_ms(ms), text);
            assert_eq!(parse_ms(text), Some(ms), "{text}");
        }
    }

    #[test]
    fn rejects_other_spellings() {
        for bad in [
            "2023-11-14T22:13:20Z",
            "2023-11-14T22:13:20.123+00:00",
            "2023-02-29T00:00:00.000Z",
            "2023-11-14 22:13:20.123Z",
            "2023-13-01T00:00:00.000Z",
            "+023-11-14T22:13:20.123Z",
        ] {
            assert_eq!(parse_ms(bad), None, "{bad}");
        }
    }
}
