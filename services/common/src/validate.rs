//! Request validation shared by every API: each check names the field it rejects, so a client
//! knows what to fix.

use orderly_proto::common::v1::{Money, PageRequest};
use uuid::Uuid;

use crate::ApiError;

pub const MAX_ID_LEN: usize = 64;
pub const MAX_NAME_LEN: usize = 200;
pub const DEFAULT_PAGE_SIZE: u64 = 50;
pub const MAX_PAGE_SIZE: u64 = 500;
/// How much of a refused input an error quotes: enough to recognise it, never an oversized
/// payload echoed back.
pub const QUOTED_CHARS: usize = 40;

/// `value` as an error quotes it: escaped, and cut after [`QUOTED_CHARS`] characters with its
/// length said.
pub fn quoted(value: &str) -> String {
    let mut chars = value.chars();
    let prefix: String = chars.by_ref().take(QUOTED_CHARS).collect();
    if chars.next().is_none() {
        format!("{prefix:?}")
    } else {
        format!("{prefix:?}... ({} bytes)", value.len())
    }
}

/// An identifier chosen by users (sku, customer id): 1-64 characters of letters, digits, `-`,
/// `_`, `.` or `:`.
pub fn identifier<'a>(field: &str, value: &'a str) -> Result<&'a str, ApiError> {
    if value.is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    if value.len() > MAX_ID_LEN {
        return Err(ApiError::invalid(
            field,
            format!("is longer than {MAX_ID_LEN} characters"),
        ));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
    {
        return Err(ApiError::invalid(
            field,
            format!("contains {bad:?}; use letters, digits, '-', '_', '.' or ':'"),
        ));
    }
    Ok(value)
}

/// Free text such as a product name: non-blank, at most 200 characters.
pub fn text<'a>(field: &str, value: &'a str) -> Result<&'a str, ApiError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    if trimmed.chars().count() > MAX_NAME_LEN {
        return Err(ApiError::invalid(
            field,
            format!("is longer than {MAX_NAME_LEN} characters"),
        ));
    }
    Ok(trimmed)
}

/// Optional free text (a reason): at most 200 characters.
pub fn optional_text<'a>(field: &str, value: &'a str) -> Result<&'a str, ApiError> {
    if value.trim().is_empty() {
        Ok("")
    } else {
        text(field, value)
    }
}

/// An ISO 4217 currency code in use (USD, EUR, JPY...): not a withdrawn code, nor one of the
/// special codes for metals, testing or "no currency".
pub fn currency<'a>(field: &str, value: &'a str) -> Result<&'a str, ApiError> {
    if value.is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    let Some(code) = iso_currency::Currency::from_code(value) else {
        return Err(ApiError::invalid(
            field,
            format!(
                "{} is not an ISO 4217 currency code (e.g. USD)",
                quoted(value)
            ),
        ));
    };
    if let Some(successor) = code.is_superseded() {
        return Err(ApiError::invalid(
            field,
            format!("{value} is withdrawn; use {}", successor.code()),
        ));
    }
    if code.is_special() {
        return Err(ApiError::invalid(
            field,
            format!("{value} is a special ISO 4217 code, not a currency"),
        ));
    }
    Ok(value)
}

/// A strictly positive amount of money with a valid currency; returns (minor units, currency).
pub fn positive_money<'a>(
    field: &str,
    value: Option<&'a Money>,
) -> Result<(i64, &'a str), ApiError> {
    let money = value.ok_or_else(|| ApiError::invalid(field, "is required"))?;
    let currency = currency(&format!("{field}.currency"), &money.currency)?;
    if money.amount_minor <= 0 {
        return Err(ApiError::invalid(
            format!("{field}.amount_minor"),
            format!("must be positive, got {}", money.amount_minor),
        ));
    }
    Ok((money.amount_minor, currency))
}

/// A quantity of items: at least 1.
pub fn positive_quantity(field: &str, value: u32) -> Result<u32, ApiError> {
    if value == 0 {
        Err(ApiError::invalid(field, "must be at least 1"))
    } else {
        Ok(value)
    }
}

/// A UUID in its canonical text form.
pub fn uuid(field: &str, value: &str) -> Result<Uuid, ApiError> {
    if value.is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    Uuid::parse_str(value)
        .map_err(|_| ApiError::invalid(field, format!("{} is not a UUID", quoted(value))))
}

/// An optional UUID filter: empty means no filter.
pub fn optional_uuid(field: &str, value: &str) -> Result<Option<Uuid>, ApiError> {
    if value.is_empty() {
        Ok(None)
    } else {
        uuid(field, value).map(Some)
    }
}

/// An optional identifier filter: empty means no filter.
pub fn optional_identifier<'a>(field: &str, value: &'a str) -> Result<Option<&'a str>, ApiError> {
    if value.is_empty() {
        Ok(None)
    } else {
        identifier(field, value).map(Some)
    }
}

/// One page of a keyset-paginated listing: `after` is the last key of the previous page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    pub size: u64,
    pub after: Option<String>,
}

impl Page {
    /// Reads page size and token, applying the default and the maximum size.
    pub fn from_request(field: &str, request: Option<&PageRequest>) -> Result<Self, ApiError> {
        let (size, token) =
            request.map_or((0, ""), |page| (page.page_size, page.page_token.as_str()));
        Self::new(field, size, token)
    }

    pub fn new(field: &str, size: u32, token: &str) -> Result<Self, ApiError> {
        let size = match u64::from(size) {
            0 => DEFAULT_PAGE_SIZE,
            size => size.min(MAX_PAGE_SIZE),
        };
        let after = if token.is_empty() {
            None
        } else {
            Some(decode_token(token).ok_or_else(|| {
                ApiError::invalid(
                    format!("{field}.page_token"),
                    "is not a token this server issued",
                )
            })?)
        };
        Ok(Self { size, after })
    }

    /// The page token as the UUID key it stands for, in listings keyed by UUID.
    pub fn after_uuid(&self, field: &str) -> Result<Option<Uuid>, ApiError> {
        self.after
            .as_deref()
            .map(|after| uuid(&format!("{field}.page_token"), after))
            .transpose()
    }

    /// The token for the page after one that returned these UUID keys.
    pub fn next_uuid_token(
        &self,
        keys: impl DoubleEndedIterator<Item = Uuid> + ExactSizeIterator,
    ) -> String {
        let keys: Vec<String> = keys.map(|key| key.to_string()).collect();
        self.next_token(keys.iter().map(String::as_str))
    }

    /// The token for the page after one that returned `keys` (empty when there is no more).
    pub fn next_token<'a>(
        &self,
        keys: impl DoubleEndedIterator<Item = &'a str> + ExactSizeIterator,
    ) -> String {
        if (keys.len() as u64) < self.size {
            return String::new();
        }
        keys.last().map(encode_token).unwrap_or_default()
    }
}

// Tokens are the last key in hex: opaque to clients, trivially checked by the server.
fn encode_token(key: &str) -> String {
    key.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_token(token: &str) -> Option<String> {
    if !token.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_reject_empty_long_and_odd_characters() {
        assert!(identifier("sku", "mug-1").is_ok());
        assert!(
            identifier("sku", "")
                .unwrap_err()
                .to_string()
                .contains("sku")
        );
        assert!(identifier("sku", &"x".repeat(65)).is_err());
        assert!(identifier("sku", "a b").is_err());
    }

    #[test]
    fn currency_must_be_an_iso_4217_code_in_use() {
        for good in ["USD", "EUR", "JPY", "CHF"] {
            assert!(currency("c", good).is_ok(), "{good}");
        }
        for bad in ["usd", "US", "USDX", "", "U$D", "XYZ"] {
            assert!(currency("c", bad).is_err(), "{bad}");
        }
        let withdrawn = currency("c", "SLL").unwrap_err().to_string();
        assert!(withdrawn.contains("use SLE"), "{withdrawn}");
        let special = currency("c", "XXX").unwrap_err().to_string();
        assert!(special.contains("special"), "{special}");
    }

    #[test]
    fn errors_quote_a_short_prefix_of_long_input() {
        assert_eq!(quoted("mug"), "\"mug\"");
        let huge = "A".repeat(100_000);
        let message = currency("c", &huge).unwrap_err().to_string();
        assert!(message.len() < 200, "{message}");
        assert!(message.contains("(100000 bytes)"), "{message}");
        assert!(uuid("id", &huge).unwrap_err().to_string().len() < 200);
    }

    #[test]
    fn money_must_be_positive_and_names_the_subfield() {
        let zero = Money {
            amount_minor: 0,
            currency: "USD".into(),
        };
        let error = positive_money("amount", Some(&zero)).unwrap_err();
        assert!(error.to_string().starts_with("invalid amount.amount_minor"));
        assert!(positive_money("amount", None).is_err());
    }

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        let page = Page::new("page", 2, "").unwrap();
        let token = page.next_token(["a", "b"].into_iter());
        assert_eq!(
            Page::new("page", 2, &token).unwrap().after.as_deref(),
            Some("b")
        );
        assert_eq!(page.next_token(["a"].into_iter()), "");
        assert!(Page::new("page", 2, "zz").is_err());
        assert_eq!(Page::new("page", 10_000, "").unwrap().size, MAX_PAGE_SIZE);
    }
}
