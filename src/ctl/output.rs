//! How `orderly ctl` prints: aligned columns for people, JSON for scripts.

use orderly_proto::common::v1::Money;

/// Rows under a header, each column as wide as its widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|cell| cell.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = vec![line(header.to_vec())];
    out.extend(
        rows.iter()
            .map(|row| line(row.iter().map(String::as_str).collect())),
    );
    out.join("\n")
}

/// A protobuf timestamp as RFC 3339 (UTC), empty when unset.
pub fn time(at: Option<&prost_types::Timestamp>) -> String {
    at.and_then(|at| chrono::DateTime::from_timestamp(at.seconds, u32::try_from(at.nanos).ok()?))
        .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Money as "12.99 USD" (two minor digits, as every currency Orderly prices in has).
pub fn money(money: Option<&Money>) -> String {
    money.map_or_else(String::new, |money| {
        let sign = if money.amount_minor < 0 { "-" } else { "" };
        let minor = money.amount_minor.unsigned_abs();
        format!(
            "{sign}{}.{:02} {}",
            minor / 100,
            minor % 100,
            money.currency
        )
    })
}

pub fn money_json(money: Option<&Money>) -> serde_json::Value {
    money.map_or(
        serde_json::Value::Null,
        |money| serde_json::json!({"amount_minor": money.amount_minor, "currency": money.currency}),
    )
}

/// At most `chars` characters of `text`, marked when cut.
pub fn cut(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_owned();
    }
    let kept: String = text.chars().take(chars.saturating_sub(1)).collect();
    format!("{kept}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let rows = vec![
            vec!["a".to_owned(), "longer".to_owned()],
            vec!["bbb".to_owned(), "x".to_owned()],
        ];
        assert_eq!(table(&["ID", "S"], &rows), "ID   S\na    longer\nbbb  x");
    }

    #[test]
    fn money_reads_as_units_and_currency() {
        let usd = |amount_minor| Money {
            amount_minor,
            currency: "USD".into(),
        };
        assert_eq!(money(Some(&usd(1_299))), "12.99 USD");
        assert_eq!(money(Some(&usd(-5))), "-0.05 USD");
        assert_eq!(money(None), "");
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abc", 4), "abc");
    }
}
