//! The input of one seed: products, customers and orders, generated so that some orders are
//! rejected for stock and some for funds, and so that we know which outcomes the input alone
//! decides (what the differential check I10 compares order by order).

use rand::{Rng, SeedableRng, rngs::StdRng};

use orderly_saga::StepIndex;

use super::{bus::OrderId, generated::Shape};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Line {
    pub product: usize,
    pub quantity: i64,
}

#[derive(Clone, Debug)]
pub struct Product {
    pub initial: i64,
}

/// What an order is meant to exercise, and so what its outcome must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A rich customer buying plentiful products: confirmed.
    Regular,
    /// A customer whose only order costs more than the balance: reserved, declined, released.
    Poor,
    /// Asks for more of the scarce product than ever existed, plus maybe a plentiful line: rejected
    /// for stock, and (all or nothing) nothing reserved.
    Oversized,
    /// One unit of the scarce product: which of these orders win depends on the schedule; only
    /// how many win is decided by the input.
    Scarce,
    /// In a generated saga: the participant of this step refuses it.
    RefusedAt(StepIndex),
}

#[derive(Clone, Debug)]
pub struct OrderSpec {
    pub id: OrderId,
    pub customer: usize,
    pub lines: Vec<Line>,
    pub amount: i64,
    pub kind: Kind,
}

#[derive(Clone, Debug)]
pub struct Workload {
    pub products: Vec<Product>,
    pub balances: Vec<i64>,
    pub orders: Vec<OrderSpec>,
}

/// Product 0 is scarce (a few units, contended); the others are stocked for every order's demand
/// with a margin of at most 2, so accounting mistakes show.
pub const SCARCE: usize = 0;
const PRICES: [i64; 3] = [700, 1_500, 4_200];
const RICH_CUSTOMERS: usize = 3;

impl Workload {
    pub fn generate(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let scarce_stock = rng.random_range(1..=3);
        let mut balances = vec![0; RICH_CUSTOMERS];
        let mut orders = Vec::new();
        for id in 1..=rng.random_range(6..=16u64) {
            let roll = rng.random_range(0..100);
            let (kind, customer, lines) = if roll < 45 {
                let customer = rng.random_range(0..RICH_CUSTOMERS);
                (Kind::Regular, customer, plentiful_lines(&mut rng))
            } else if roll < 70 {
                let customer = rng.random_range(0..RICH_CUSTOMERS);
                let line = Line {
                    product: SCARCE,
                    quantity: 1,
                };
                (Kind::Scarce, customer, vec![line])
            } else if roll < 85 {
                balances.push(0);
                (Kind::Poor, balances.len() - 1, plentiful_lines(&mut rng))
            } else {
                let customer = rng.random_range(0..RICH_CUSTOMERS);
                let mut lines = vec![Line {
                    product: SCARCE,
                    quantity: scarce_stock + rng.random_range(1..=2),
                }];
                if rng.random_bool(0.5) {
                    lines.extend(plentiful_lines(&mut rng).into_iter().take(1));
                }
                (Kind::Oversized, customer, lines)
            };
            let amount = lines
                .iter()
                .map(|line| PRICES[line.product] * line.quantity)
                .sum();
            match kind {
                Kind::Poor => balances[customer] = rng.random_range(0..amount),
                Kind::Regular | Kind::Oversized | Kind::Scarce | Kind::RefusedAt(_) => {
                    balances[customer] += amount
                }
            }
            orders.push(OrderSpec {
                id,
                customer,
                lines,
                amount,
                kind,
            });
        }
        for balance in balances.iter_mut().take(RICH_CUSTOMERS) {
            *balance += rng.random_range(0..=500);
        }
        let products = (0..PRICES.len())
            .map(|product| {
                let demand: i64 = orders
                    .iter()
                    .flat_map(|order| &order.lines)
                    .filter(|line| line.product == product)
                    .map(|line| line.quantity)
                    .sum();
                let initial = if product == SCARCE {
                    scarce_stock
                } else {
                    demand + rng.random_range(0..=2)
                };
                Product { initial }
            })
            .collect();
        Self {
            products,
            balances,
            orders,
        }
    }

    /// Orders for a generated saga of `shape`: most go through, the others are refused by a
    /// step that may refuse. Products and money play no part (the steps hold their own).
    pub fn generate_for(seed: u64, shape: Shape) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let refusing: Vec<StepIndex> = (0..shape.steps)
            .filter(|step| shape.may_refuse(*step))
            .collect();
        let orders = (1..=rng.random_range(6..=16u64))
            .map(|id| {
                let kind = if rng.random_bool(0.6) {
                    Kind::Regular
                } else {
                    Kind::RefusedAt(refusing[rng.random_range(0..refusing.len())])
                };
                let lines = plentiful_lines(&mut rng);
                let amount = lines
                    .iter()
                    .map(|line| PRICES[line.product] * line.quantity)
                    .sum();
                let customer = rng.random_range(0..RICH_CUSTOMERS);
                OrderSpec {
                    id,
                    customer,
                    lines,
                    amount,
                    kind,
                }
            })
            .collect();
        Self {
            products: Vec::new(),
            balances: Vec::new(),
            orders,
        }
    }

    pub fn order(&self, id: OrderId) -> Option<&OrderSpec> {
        self.orders.iter().find(|order| order.id == id)
    }
}

/// One or two distinct plentiful products, 1 to 3 of each.
fn plentiful_lines(rng: &mut StdRng) -> Vec<Line> {
    let first = rng.random_range(1..PRICES.len());
    let mut lines = vec![Line {
        product: first,
        quantity: rng.random_range(1..=3),
    }];
    if rng.random_bool(0.4) {
        let second = if first == 1 { 2 } else { 1 };
        lines.push(Line {
            product: second,
            quantity: rng.random_range(1..=3),
        });
    }
    lines
}
