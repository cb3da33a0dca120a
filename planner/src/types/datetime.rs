//! Dates, times and timestamps: the proleptic Gregorian calendar, PostgreSQL text input
//! and ISO output (DateStyle ISO, TimeZone UTC). Intervals are in `interval.rs`.
//!
//! Representations (all in [`super::Datum`]):
//!
//! | type        | value                                   | special values           |
//! |-------------|-----------------------------------------|--------------------------|
//! | date        | i32 days since 1970-01-01               | i32::MIN/MAX = ∓infinity |
//! | time        | i64 µs since midnight, 0..=24:00:00     |                          |
//! | timestamp   | i64 µs since 1970-01-01 00:00:00        | i64::MIN/MAX = ∓infinity |
//! | timestamptz | i64 µs since 1970-01-01 00:00:00 UTC    | i64::MIN/MAX = ∓infinity |
//! | interval    | months i32, days i32, µs i64 (kept apart, like PG) |               |
//!
//! Input accepted: ISO dates `YYYY-MM-DD` (and `YYYYMMDD`), optional ` BC`/` AD`; times
//! `HH:MM[:SS[.fraction]]` with optional `am`/`pm`; `T` or spaces between; zone `Z`,
//! `UTC`, `GMT`, `±HH`, `±HHMM`, `±HH:MM[:SS]`; the specials `infinity`, `-infinity`,
//! `epoch`, `now`, `today`, `tomorrow`, `yesterday`. Fractions beyond µs round half up.
//!
//! Caveats:
//! - Named time zones (`Europe/Paris`) and non-ISO date orders (`01/02/2024`,
//!   `Jan 2 2024`) are not accepted.
//! - `now`/`today` read the node's wall clock, not the transaction start time.
//! - Timestamps end at 294247-01-01 (µs since 1970 in an i64), 29 years before
//!   PostgreSQL's limit; they start, like PostgreSQL's, at 4714-11-24 BC.

use std::time::{SystemTime, UNIX_EPOCH};

use super::{SqlType, TypeError};

pub(crate) const USECS_PER_SEC: i64 = 1_000_000;
pub(crate) const USECS_PER_MINUTE: i64 = 60 * USECS_PER_SEC;
pub(crate) const USECS_PER_HOUR: i64 = 60 * USECS_PER_MINUTE;
pub(crate) const USECS_PER_DAY: i64 = 24 * USECS_PER_HOUR;
/// Days and µs from 1970-01-01 to PostgreSQL's epoch 2000-01-01.
pub(crate) const PG_EPOCH_DAYS: i32 = 10_957;
pub(crate) const PG_EPOCH_USECS: i64 = PG_EPOCH_DAYS as i64 * USECS_PER_DAY;
/// First valid date (4714-11-24 BC, Julian day 0), in days since 1970.
pub(crate) const DATE_MIN: i32 = -2_440_588;
/// First invalid date (5874898-01-01), in days since 1970.
pub(crate) const DATE_END: i32 = 2_145_042_906;
/// First valid timestamp (4714-11-24 BC 00:00), in µs since 1970.
pub(crate) const TIMESTAMP_MIN: i64 = DATE_MIN as i64 * USECS_PER_DAY;
/// First invalid timestamp (294247-01-01 00:00), in µs since 1970.
pub(crate) const TIMESTAMP_END: i64 = 9_223_371_244_800_000_000;
pub(crate) const DATE_NEG_INFINITY: i32 = i32::MIN;
pub(crate) const DATE_POS_INFINITY: i32 = i32::MAX;
pub(crate) const TS_NEG_INFINITY: i64 = i64::MIN;
pub(crate) const TS_POS_INFINITY: i64 = i64::MAX;
/// PostgreSQL's interval comparison: a month is 30 days.
pub(crate) const DAYS_PER_MONTH: i64 = 30;

// ---------------------------------------------------------------------------------
// Calendar.

/// Days since 1970-01-01 of a proleptic Gregorian date (year 0 = 1 BC).
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian (year, month, day) of a day count since 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap(year: i64) -> bool {
    year.rem_euclid(4) == 0 && (year.rem_euclid(100) != 0 || year.rem_euclid(400) == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(year) => 29,
        _ => 28,
    }
}

fn now_usecs() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    now.clamp(TIMESTAMP_MIN, TIMESTAMP_END - 1)
}

// ---------------------------------------------------------------------------------
// Output.

fn push_year(out: &mut String, year: i64) -> bool {
    let (shown, bc) = if year <= 0 {
        (1 - year, true)
    } else {
        (year, false)
    };
    out.push_str(&format!("{shown:04}"));
    bc
}

fn push_date(out: &mut String, days: i64) -> bool {
    let (y, m, d) = civil_from_days(days);
    let bc = push_year(out, y);
    out.push_str(&format!("-{m:02}-{d:02}"));
    bc
}

/// `HH:MM:SS[.ffffff]` with trailing fractional zeros trimmed; hours may exceed 23.
pub(crate) fn push_clock(out: &mut String, usecs: i64) {
    let usecs = usecs.unsigned_abs();
    let hours = usecs / USECS_PER_HOUR as u64;
    let minutes = usecs / USECS_PER_MINUTE as u64 % 60;
    let seconds = usecs / USECS_PER_SEC as u64 % 60;
    let fraction = usecs % USECS_PER_SEC as u64;
    out.push_str(&format!("{hours:02}:{minutes:02}:{seconds:02}"));
    if fraction != 0 {
        let digits = format!("{fraction:06}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
}

/// `2024-01-02`, `0044-03-15 BC`, `infinity`.
pub(crate) fn format_date(days: i32) -> String {
    match days {
        DATE_POS_INFINITY => return "infinity".into(),
        DATE_NEG_INFINITY => return "-infinity".into(),
        _ => {}
    }
    let mut out = String::with_capacity(13);
    if push_date(&mut out, i64::from(days)) {
        out.push_str(" BC");
    }
    out
}

/// `12:00:00`, `23:59:59.5`, `24:00:00`.
pub(crate) fn format_time(usecs: i64) -> String {
    let mut out = String::with_capacity(15);
    push_clock(&mut out, usecs);
    out
}

/// `2024-01-02 12:00:00[.ffffff]`, with `+00` for timestamptz; `infinity`.
pub(crate) fn format_timestamp(usecs: i64, with_zone: bool) -> String {
    match usecs {
        TS_POS_INFINITY => return "infinity".into(),
        TS_NEG_INFINITY => return "-infinity".into(),
        _ => {}
    }
    let days = usecs.div_euclid(USECS_PER_DAY);
    let time = usecs.rem_euclid(USECS_PER_DAY);
    let mut out = String::with_capacity(32);
    let bc = push_date(&mut out, days);
    out.push(' ');
    push_clock(&mut out, time);
    if with_zone {
        out.push_str("+00");
    }
    if bc {
        out.push_str(" BC");
    }
    out
}

// ---------------------------------------------------------------------------------
// Date/time input.

/// Why a date/time string did not parse.
#[derive(Debug, PartialEq)]
enum DtError {
    /// Not the shape of a date/time (22007).
    Syntax,
    /// Shaped right but a field is out of range (22008).
    FieldOverflow,
    /// An unknown time zone name (22023).
    BadZone(String),
    /// A numeric zone offset beyond ±15:59:59 (PG: 22009; here 22008).
    ZoneDisplacement,
}

enum Special {
    Infinity,
    NegInfinity,
    Epoch,
    Now,
    Today,
    Tomorrow,
    Yesterday,
}

#[derive(Default)]
struct Parts {
    /// (astronomical year, month, day), validated.
    date: Option<(i64, u32, u32)>,
    /// µs since midnight, validated (may be exactly 24:00:00).
    time: Option<i64>,
    /// Zone offset in seconds east of UTC.
    offset: Option<i64>,
}

enum Parsed {
    Special(Special),
    Parts(Parts),
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn peek_at(&self, k: usize) -> Option<u8> {
        self.s.get(self.i + k).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn skip_ws(&mut self) -> bool {
        let start = self.i;
        while matches!(self.peek(), Some(c) if c.is_ascii_whitespace()) {
            self.i += 1;
        }
        self.i > start
    }

    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    /// A run of ASCII digits: (its bytes).
    fn digits(&mut self) -> &[u8] {
        let start = self.i;
        while matches!(self.peek(), Some(c) if c.is_ascii_digit()) {
            self.i += 1;
        }
        &self.s[start..self.i]
    }

    fn number(&mut self) -> Result<(i64, usize), DtError> {
        let d = self.digits();
        if d.is_empty() || d.len() > 9 {
            return Err(DtError::Syntax);
        }
        Ok((digits_i64(d), d.len()))
    }

    fn word(&mut self) -> &[u8] {
        let start = self.i;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphabetic() || c == b'/' || c == b'_') {
            self.i += 1;
        }
        &self.s[start..self.i]
    }
}

fn digits_i64(d: &[u8]) -> i64 {
    d.iter()
        .fold(0i64, |acc, &c| acc * 10 + i64::from(c - b'0'))
}

/// Fractional-second digits (after the point) as µs, rounded half up.
pub(crate) fn fraction_usecs(d: &[u8]) -> i64 {
    let mut us = 0i64;
    for k in 0..6 {
        us = us * 10 + d.get(k).map_or(0, |&c| i64::from(c - b'0'));
    }
    if d.get(6).is_some_and(|&c| c >= b'5') {
        us += 1;
    }
    us
}

fn parse_datetime(input: &str) -> Result<Parsed, DtError> {
    let lower = input.trim().to_ascii_lowercase();
    let special = match lower.as_str() {
        "infinity" | "+infinity" => Some(Special::Infinity),
        "-infinity" => Some(Special::NegInfinity),
        "epoch" => Some(Special::Epoch),
        "now" => Some(Special::Now),
        "today" => Some(Special::Today),
        "tomorrow" => Some(Special::Tomorrow),
        "yesterday" => Some(Special::Yesterday),
        _ => None,
    };
    if let Some(sp) = special {
        return Ok(Parsed::Special(sp));
    }
    let mut c = Cursor {
        s: lower.as_bytes(),
        i: 0,
    };
    let mut parts = Parts::default();
    let mut ymd = None;
    // Date: digits followed by '-', or 8 digits (YYYYMMDD).
    let start = c.i;
    let first = c.digits().to_vec();
    if !first.is_empty() && c.peek() == Some(b'-') {
        c.i += 1;
        let (m, _) = c.number()?;
        if !c.eat(b'-') {
            return Err(DtError::Syntax);
        }
        let (d, _) = c.number()?;
        if first.len() > 9 {
            return Err(DtError::FieldOverflow);
        }
        ymd = Some((digits_i64(&first), m, d));
    } else if first.len() == 8 && c.peek() != Some(b':') {
        ymd = Some((
            digits_i64(&first[..4]),
            digits_i64(&first[4..6]),
            digits_i64(&first[6..]),
        ));
    } else {
        c.i = start;
    }
    // Separator, then an optional time.
    if ymd.is_some() {
        let had_ws = c.skip_ws();
        if c.peek() == Some(b't') && c.peek_at(1).is_some_and(|b| b.is_ascii_digit()) {
            c.i += 1;
        } else if !had_ws
            && !c.at_end()
            && !c
                .peek()
                .is_some_and(|b| b == b'+' || b.is_ascii_alphabetic())
        {
            // `2024-01-02+05` and `2024-01-02Z` are fine, `2024-01-02-05` is not.
            return Err(DtError::Syntax);
        }
    }
    let mut hms = None;
    if c.peek().is_some_and(|b| b.is_ascii_digit()) {
        let (h, _) = c.number()?;
        if !c.eat(b':') {
            return Err(DtError::Syntax);
        }
        let (m, mlen) = c.number()?;
        if mlen > 2 {
            return Err(DtError::Syntax);
        }
        let mut s = 0;
        let mut frac = 0;
        if c.eat(b':') {
            let (sv, slen) = c.number()?;
            if slen > 2 {
                return Err(DtError::Syntax);
            }
            s = sv;
            if c.eat(b'.') {
                frac = fraction_usecs(c.digits());
            }
        }
        hms = Some((h, m, s, frac));
    }
    // Trailing tokens: zone, era, am/pm.
    let mut bc = false;
    let mut meridian = None;
    loop {
        c.skip_ws();
        match c.peek() {
            None => break,
            Some(b'+' | b'-') => {
                let negative = c.peek() == Some(b'-');
                c.i += 1;
                parts.offset = Some(parse_offset(&mut c, negative)?);
            }
            Some(b) if b.is_ascii_alphabetic() => match c.word() {
                b"z" | b"utc" | b"gmt" | b"ut" | b"zulu" => parts.offset = Some(0),
                b"bc" => bc = true,
                b"ad" => {}
                b"am" => meridian = Some(false),
                b"pm" => meridian = Some(true),
                // A word after a date or time is a zone name; alone it is garbage.
                _ if ymd.is_none() && hms.is_none() => return Err(DtError::Syntax),
                other => {
                    return Err(DtError::BadZone(
                        String::from_utf8_lossy(other).into_owned(),
                    ))
                }
            },
            Some(_) => return Err(DtError::Syntax),
        }
    }
    if let Some((year, month, day)) = ymd {
        let year = if bc {
            if year < 1 {
                return Err(DtError::FieldOverflow);
            }
            1 - year
        } else {
            year
        };
        if !(1..=12).contains(&month)
            || day < 1
            || day > i64::from(days_in_month(year, month as u32))
            || (!bc && year == 0)
        {
            return Err(DtError::FieldOverflow);
        }
        parts.date = Some((year, month as u32, day as u32));
    } else if bc {
        return Err(DtError::Syntax);
    }
    if let Some((mut h, m, s, frac)) = hms {
        match meridian {
            Some(pm) if (1..=12).contains(&h) => h = h % 12 + if pm { 12 } else { 0 },
            Some(_) => return Err(DtError::FieldOverflow),
            None => {}
        }
        if h > 24 || m > 59 || s > 60 || (h == 24 && (m, s, frac) != (0, 0, 0)) {
            return Err(DtError::FieldOverflow);
        }
        parts.time = Some(h * USECS_PER_HOUR + m * USECS_PER_MINUTE + s * USECS_PER_SEC + frac);
    } else if meridian.is_some() {
        return Err(DtError::Syntax);
    }
    if parts.date.is_none() && parts.time.is_none() {
        return Err(DtError::Syntax);
    }
    Ok(Parsed::Parts(parts))
}

/// `HH`, `HHMM`, `HH:MM`, `HH:MM:SS`, `HHMMSS` after a sign; seconds east of UTC.
fn parse_offset(c: &mut Cursor<'_>, negative: bool) -> Result<i64, DtError> {
    let d = c.digits().to_vec();
    let (h, mut m, mut s) = match d.len() {
        1 | 2 => (digits_i64(&d), 0, 0),
        4 => (digits_i64(&d[..2]), digits_i64(&d[2..]), 0),
        6 => (
            digits_i64(&d[..2]),
            digits_i64(&d[2..4]),
            digits_i64(&d[4..]),
        ),
        _ => return Err(DtError::Syntax),
    };
    if d.len() <= 2 && c.eat(b':') {
        let (mv, mlen) = c.number()?;
        if mlen != 2 {
            return Err(DtError::Syntax);
        }
        m = mv;
        if c.eat(b':') {
            let (sv, slen) = c.number()?;
            if slen != 2 {
                return Err(DtError::Syntax);
            }
            s = sv;
        }
    }
    if h > 15 || m > 59 || s > 59 {
        return Err(DtError::ZoneDisplacement);
    }
    let secs = h * 3600 + m * 60 + s;
    Ok(if negative { -secs } else { secs })
}

fn dt_error(err: DtError, ty: &SqlType, input: &str) -> TypeError {
    match err {
        DtError::Syntax => TypeError::datetime_syntax(ty, input),
        DtError::FieldOverflow => {
            TypeError::datetime_overflow(format!("date/time field value out of range: \"{input}\""))
        }
        DtError::ZoneDisplacement => TypeError::datetime_overflow(format!(
            "time zone displacement out of range: \"{input}\""
        )),
        DtError::BadZone(zone) => {
            TypeError::InvalidParameter(format!("time zone \"{zone}\" not recognized"))
        }
    }
}

fn range_error(what: &str, input: &str) -> TypeError {
    TypeError::datetime_overflow(format!("{what} out of range: \"{input}\""))
}

/// Text input for `date`; a time part is accepted and ignored.
pub(crate) fn parse_date(input: &str) -> Result<i32, TypeError> {
    let ty = SqlType::Date;
    let today = || now_usecs().div_euclid(USECS_PER_DAY) as i32;
    let days = match parse_datetime(input).map_err(|e| dt_error(e, &ty, input))? {
        Parsed::Special(Special::Infinity) => return Ok(DATE_POS_INFINITY),
        Parsed::Special(Special::NegInfinity) => return Ok(DATE_NEG_INFINITY),
        Parsed::Special(Special::Epoch) => 0,
        Parsed::Special(Special::Now | Special::Today) => today(),
        Parsed::Special(Special::Tomorrow) => today() + 1,
        Parsed::Special(Special::Yesterday) => today() - 1,
        Parsed::Parts(Parts { date: None, .. }) => {
            return Err(TypeError::datetime_syntax(&ty, input))
        }
        Parsed::Parts(Parts {
            date: Some((y, m, d)),
            ..
        }) => {
            let days = days_from_civil(y, m, d);
            if days < i64::from(DATE_MIN) || days >= i64::from(DATE_END) {
                return Err(range_error("date", input));
            }
            days as i32
        }
    };
    Ok(days)
}

/// Text input for `time`; a date part and a zone are accepted and ignored.
pub(crate) fn parse_time(input: &str) -> Result<i64, TypeError> {
    let ty = SqlType::Time;
    match parse_datetime(input).map_err(|e| dt_error(e, &ty, input))? {
        Parsed::Parts(Parts { time: Some(t), .. }) => Ok(t),
        Parsed::Special(Special::Now) => Ok(now_usecs().rem_euclid(USECS_PER_DAY)),
        Parsed::Special(Special::Epoch) => Ok(0),
        _ => Err(TypeError::datetime_syntax(&ty, input)),
    }
}

/// Text input for `timestamp` (`with_zone` false: a zone is ignored) and `timestamptz`
/// (converted to UTC; no zone means the session zone, UTC).
pub(crate) fn parse_timestamp(input: &str, with_zone: bool) -> Result<i64, TypeError> {
    let ty = if with_zone {
        SqlType::TimestampTz
    } else {
        SqlType::Timestamp
    };
    let today = || now_usecs().div_euclid(USECS_PER_DAY) * USECS_PER_DAY;
    let usecs = match parse_datetime(input).map_err(|e| dt_error(e, &ty, input))? {
        Parsed::Special(Special::Infinity) => return Ok(TS_POS_INFINITY),
        Parsed::Special(Special::NegInfinity) => return Ok(TS_NEG_INFINITY),
        Parsed::Special(Special::Epoch) => 0,
        Parsed::Special(Special::Now) => now_usecs(),
        Parsed::Special(Special::Today) => today(),
        Parsed::Special(Special::Tomorrow) => today() + USECS_PER_DAY,
        Parsed::Special(Special::Yesterday) => today() - USECS_PER_DAY,
        Parsed::Parts(Parts { date: None, .. }) => {
            return Err(TypeError::datetime_syntax(&ty, input))
        }
        Parsed::Parts(Parts {
            date: Some((y, m, d)),
            time,
            offset,
        }) => {
            let local = i128::from(days_from_civil(y, m, d)) * i128::from(USECS_PER_DAY)
                + i128::from(time.unwrap_or(0));
            let utc = match (with_zone, offset) {
                (true, Some(off)) => local - i128::from(off) * i128::from(USECS_PER_SEC),
                _ => local,
            };
            if utc < i128::from(TIMESTAMP_MIN) || utc >= i128::from(TIMESTAMP_END) {
                return Err(range_error("timestamp", input));
            }
            utc as i64
        }
    };
    Ok(usecs)
}

/// Whether µs since 1970 is a valid finite timestamp.
pub(crate) fn timestamp_in_range(usecs: i64) -> bool {
    (TIMESTAMP_MIN..TIMESTAMP_END).contains(&usecs)
}

/// Whether days since 1970 is a valid finite date.
pub(crate) fn date_in_range(days: i32) -> bool {
    (DATE_MIN..DATE_END).contains(&days)
}

/// A date as the timestamp of its midnight (infinities map to infinities).
pub(crate) fn date_to_timestamp(days: i32) -> Result<i64, TypeError> {
    match days {
        DATE_POS_INFINITY => Ok(TS_POS_INFINITY),
        DATE_NEG_INFINITY => Ok(TS_NEG_INFINITY),
        _ => {
            let us = i64::from(days) * USECS_PER_DAY;
            if timestamp_in_range(us) {
                Ok(us)
            } else {
                Err(TypeError::datetime_overflow("timestamp out of range"))
            }
        }
    }
}

/// The date of a timestamp (infinities map to infinities).
pub(crate) fn timestamp_to_date(usecs: i64) -> i32 {
    match usecs {
        TS_POS_INFINITY => DATE_POS_INFINITY,
        TS_NEG_INFINITY => DATE_NEG_INFINITY,
        _ => usecs.div_euclid(USECS_PER_DAY) as i32,
    }
}
