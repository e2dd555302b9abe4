//! Who may call each RPC of InventoryService (see `orderly_common::auth`): anyone signed in reads
//! the catalogue, and so does the order service to price orders; the catalogue role changes it;
//! only the orchestrator releases a reservation (a compensation).

use orderly_common::auth::{Access, EVERY_ROLE, Role, Rules};

pub const RULES: Rules = &[
    ("UpsertProduct", CATALOG),
    ("Restock", CATALOG),
    ("GetProduct", READ_CATALOGUE),
    ("BatchGetProducts", READ_CATALOGUE),
    ("ListProducts", READ_CATALOGUE),
    (
        "ReleaseReservation",
        Access {
            roles: &[],
            components: &["orchestrator"],
        },
    ),
    (
        "ListReservations",
        Access {
            roles: &[Role::Catalog, Role::Operator],
            components: &[],
        },
    ),
];

const CATALOG: Access = Access {
    roles: &[Role::Catalog],
    components: &[],
};

const READ_CATALOGUE: Access = Access {
    roles: EVERY_ROLE,
    components: &["order"],
};

#[cfg(test)]
mod tests {
    #[test]
    fn every_rpc_has_a_rule() {
        let service = orderly_proto::inventory::v1::inventory_service_server::SERVICE_NAME;
        let found = orderly_common::auth::mismatches(super::RULES, service);
        assert!(found.is_empty(), "{found:?}");
    }
}
