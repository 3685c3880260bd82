//! Goal budgets: how they are written, and what is left of them.
//!
//! - time: `30s`, `15m`, `8h`, `7d`, parts of them largest first (`1h30m`,
//!   `1d12h`) or bare seconds (`90`), case-insensitive; whole numbers only. Time is agent-seconds: the sum of the tasks' time
//!   budgets, not wall-clock time.
//! - tokens: a whole number.
//! - USD: a decimal amount (`2.50`), kept as micro-USD so arithmetic is exact.

use serde::{Deserialize, Serialize};

/// A budget value that cannot be used, with what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} `{input}`: {problem}; {accepted}")]
pub struct BudgetError {
    pub what: &'static str,
    pub input: String,
    pub problem: &'static str,
    pub accepted: &'static str,
}

impl omk_core::diagnose::Diagnose for BudgetError {
    fn help(&self) -> Option<String> {
        Some(self.accepted.to_owned())
    }
}

const TIME_FORMS: &str = "write whole seconds (`90`) or whole numbers with s, m, h or d, largest first (`30s`, `15m`, `8h`, `7d`, `1h30m`)";
const TOKEN_FORMS: &str = "write a whole number of tokens (`200000`)";
const USD_FORMS: &str = "write an amount in dollars with at most 6 decimals (`2.50`)";

/// Parses a time budget into seconds.
pub fn parse_time(input: &str) -> Result<u64, BudgetError> {
    let err = |problem| BudgetError {
        what: "time budget",
        input: input.to_owned(),
        problem,
        accepted: TIME_FORMS,
    };
    let s = input.trim().to_ascii_lowercase();
    if s.is_empty() {
        return Err(err("it is empty"));
    }
    if s.starts_with('-') {
        return Err(err("it is negative"));
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| err("the number is too large"));
    }
    // Parts of a number and a unit, largest unit first, each once: `1h30m`.
    let mut total: u64 = 0;
    let mut last_unit = u64::MAX;
    let mut rest = s.as_str();
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (digits, tail) = rest.split_at(digits_end);
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_end);
        let unit = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            u if u.starts_with('.') || u.starts_with(',') => {
                return Err(err("fractions are not accepted"));
            }
            _ => return Err(err("the unit is unknown")),
        };
        if digits.is_empty() {
            return Err(err("it has no number"));
        }
        if unit >= last_unit {
            return Err(err(
                "its parts must go from days down to seconds, each unit once",
            ));
        }
        last_unit = unit;
        let n: u64 = digits.parse().map_err(|_| err("the number is too large"))?;
        total = n
            .checked_mul(unit)
            .and_then(|part| total.checked_add(part))
            .ok_or_else(|| err("the number is too large"))?;
        rest = next;
    }
    Ok(total)
}

/// Parses a token budget.
pub fn parse_tokens(input: &str) -> Result<u64, BudgetError> {
    let err = |problem| BudgetError {
        what: "token budget",
        input: input.to_owned(),
        problem,
        accepted: TOKEN_FORMS,
    };
    let s = input.trim().replace('_', "");
    if s.is_empty() {
        return Err(err("it is empty"));
    }
    if s.starts_with('-') {
        return Err(err("it is negative"));
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err("it is not a whole number"));
    }
    s.parse().map_err(|_| err("the number is too large"))
}

/// Parses a USD amount into micro-USD.
pub fn parse_usd(input: &str) -> Result<u64, BudgetError> {
    let err = |problem| BudgetError {
        what: "USD budget",
        input: input.to_owned(),
        problem,
        accepted: USD_FORMS,
    };
    let s = input.trim().trim_start_matches('$');
    if s.is_empty() {
        return Err(err("it is empty"));
    }
    if s.starts_with('-') {
        return Err(err("it is negative"));
    }
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) {
        return Err(err("it is not an amount"));
    }
    if frac.len() > 6 {
        return Err(err("it has more than 6 decimals"));
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| err("the amount is too large"))?
    };
    let frac_micros: u64 = format!("{frac:0<6}")
        .parse()
        .map_err(|_| err("it is not an amount"))?;
    whole
        .checked_mul(1_000_000)
        .and_then(|w| w.checked_add(frac_micros))
        .ok_or_else(|| err("the amount is too large"))
}

/// Seconds as the shortest exact form (`90s`, `15m`, `8h`).
pub fn format_time(secs: u64) -> String {
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs >= size && secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

/// Micro-USD as dollars (`$2.50`).
pub fn format_usd(micros: u64) -> String {
    let cents_exact = micros.is_multiple_of(10_000);
    if cents_exact {
        format!(
            "${}.{:02}",
            micros / 1_000_000,
            (micros % 1_000_000) / 10_000
        )
    } else {
        format!("${}.{:06}", micros / 1_000_000, micros % 1_000_000)
    }
}

/// A goal's limits; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub time_secs: Option<u64>,
    pub tokens: Option<u64>,
    pub usd_micros: Option<u64>,
}

/// What a goal has used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Spent {
    pub time_secs: u64,
    pub tokens: u64,
    pub usd_micros: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_forms() {
        for (input, secs) in [
            ("30s", 30),
            ("15m", 900),
            ("8h", 28_800),
            ("7d", 604_800),
            ("90", 90),
            ("1H", 3600),
            (" 2M ", 120),
            ("0", 0),
            ("1h30m", 5400),
            ("1d12h", 129_600),
            ("2h0m5s", 7205),
        ] {
            assert_eq!(parse_time(input), Ok(secs), "{input}");
        }
    }

    #[test]
    fn time_errors_say_what_is_accepted() {
        for (input, problem) in [
            ("", "it is empty"),
            ("1.5h", "fractions are not accepted"),
            ("-5m", "it is negative"),
            ("10w", "the unit is unknown"),
            ("h", "it has no number"),
            ("5 m", "the unit is unknown"),
            ("99999999999999999999d", "the number is too large"),
            (
                "30m1h",
                "its parts must go from days down to seconds, each unit once",
            ),
            (
                "1h1h",
                "its parts must go from days down to seconds, each unit once",
            ),
            ("1h30", "the unit is unknown"),
            ("999999999999999999d", "the number is too large"),
        ] {
            let e = parse_time(input).unwrap_err();
            assert_eq!(e.problem, problem, "{input}");
            assert!(e.to_string().contains("`30s`, `15m`, `8h`, `7d`"), "{e}");
        }
    }

    #[test]
    fn tokens_and_usd() {
        assert_eq!(parse_tokens("200_000"), Ok(200_000));
        assert!(parse_tokens("-1").is_err());
        assert!(parse_tokens("1e6").is_err());
        assert_eq!(parse_usd("2.50"), Ok(2_500_000));
        assert_eq!(parse_usd("$3"), Ok(3_000_000));
        assert_eq!(parse_usd(".5"), Ok(500_000));
        assert_eq!(parse_usd("0.000001"), Ok(1));
        for bad in ["", "-1", "1.2.3", "abc", "1.0000001", "."] {
            assert!(parse_usd(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats() {
        assert_eq!(format_time(3600), "1h");
        assert_eq!(format_time(5400), "90m");
        assert_eq!(format_time(61), "61s");
        assert_eq!(format_usd(2_500_000), "$2.50");
        assert_eq!(format_usd(1), "$0.000001");
    }
}
