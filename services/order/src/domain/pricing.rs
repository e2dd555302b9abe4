//! Server-side pricing of an order: pure arithmetic over the catalogue's prices, checked for
//! overflow and for one currency per order.

use std::collections::HashMap;

/// A product's price as the catalogue states it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Price {
    pub amount_minor: i64,
    pub currency: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PricedLine {
    pub sku: String,
    pub quantity: u32,
    pub unit_price_minor: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Priced {
    pub lines: Vec<PricedLine>,
    pub total_minor: i64,
    pub currency: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    #[error("items[{index}].sku: unknown product {sku}")]
    UnknownProduct { index: usize, sku: String },
    #[error("items[{index}].sku: {sku} is priced in {found}, other items in {expected}")]
    MixedCurrencies {
        index: usize,
        sku: String,
        found: String,
        expected: String,
    },
    #[error("items: the order total overflows")]
    Overflow,
}

/// Prices `items` (sku, quantity) with `prices`; every item must be known and share a currency.
pub fn price(
    items: &[(String, u32)],
    prices: &HashMap<String, Price>,
) -> Result<Priced, PricingError> {
    let mut lines = Vec::with_capacity(items.len());
    let mut total: i64 = 0;
    let mut currency: Option<&str> = None;
    for (index, (sku, quantity)) in items.iter().enumerate() {
        let price = prices
            .get(sku)
            .ok_or_else(|| PricingError::UnknownProduct {
                index,
                sku: sku.clone(),
            })?;
        match currency {
            None => currency = Some(&price.currency),
            Some(expected) if expected != price.currency => {
                return Err(PricingError::MixedCurrencies {
                    index,
                    sku: sku.clone(),
                    found: price.currency.clone(),
                    expected: expected.to_owned(),
                });
            }
            Some(_) => {}
        }
        let line_total = price
            .amount_minor
            .checked_mul(i64::from(*quantity))
            .ok_or(PricingError::Overflow)?;
        total = total
            .checked_add(line_total)
            .ok_or(PricingError::Overflow)?;
        lines.push(PricedLine {
            sku: sku.clone(),
            quantity: *quantity,
            unit_price_minor: price.amount_minor,
        });
    }
    Ok(Priced {
        lines,
        total_minor: total,
        currency: currency.unwrap_or_default().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalogue() -> HashMap<String, Price> {
        HashMap::from([
            (
                "mug".to_owned(),
                Price {
                    amount_minor: 1_299,
                    currency: "USD".into(),
                },
            ),
            (
                "pen".to_owned(),
                Price {
                    amount_minor: 250,
                    currency: "USD".into(),
                },
            ),
            (
                "tea".to_owned(),
                Price {
                    amount_minor: 500,
                    currency: "EUR".into(),
                },
            ),
            (
                "gold".to_owned(),
                Price {
                    amount_minor: i64::MAX / 2,
                    currency: "USD".into(),
                },
            ),
        ])
    }

    #[test]
    fn totals_are_exact_sums_of_lines() {
        let priced = price(&[("mug".into(), 2), ("pen".into(), 3)], &catalogue()).unwrap();
        assert_eq!(
            (priced.total_minor, priced.currency.as_str()),
            (3_348, "USD")
        );
        assert_eq!(priced.lines[1].unit_price_minor, 250);
    }

    #[test]
    fn unknown_products_mixed_currencies_and_overflow_are_refused() {
        let prices = catalogue();
        assert!(matches!(
            price(&[("nope".into(), 1)], &prices),
            Err(PricingError::UnknownProduct { index: 0, .. })
        ));
        assert!(matches!(
            price(&[("mug".into(), 1), ("tea".into(), 1)], &prices),
            Err(PricingError::MixedCurrencies { index: 1, .. })
        ));
        assert_eq!(
            price(&[("gold".into(), 3)], &prices),
            Err(PricingError::Overflow)
        );
    }
}
