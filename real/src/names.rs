//! Physical names of one real-mode run. Every table, topic, slot, consumer
//! group and object-store prefix carries the run's prefix, so concurrent or
//! leftover runs never collide and cleanup can find everything.

use pitfall_sim::topology::{INVENTORY_DB, ORDERS_DB, PAYMENTS_DB};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunNames {
    prefix: String,
}

/// The prefix every run's names start with.
pub const PREFIX: &str = "pitfall_";

impl RunNames {
    /// `tag` must be short lowercase alphanumerics (the seed and a nonce).
    pub fn new(tag: &str) -> Self {
        debug_assert!(tag
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
        RunNames {
            prefix: format!("{PREFIX}{tag}"),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn db_tag(db: &str) -> &'static str {
        match db {
            PAYMENTS_DB => "pay",
            INVENTORY_DB => "inv",
            ORDERS_DB => "ord",
            other => panic!("unknown logical database {other}"),
        }
    }

    /// The Postgres table behind a logical DB's table.
    pub fn table(&self, db: &str, table: &str) -> String {
        format!("{}_{}_{}", self.prefix, Self::db_tag(db), table)
    }

    /// The logical (db, table) of a physical table name of this run.
    pub fn logical_table(&self, physical: &str) -> Option<(&'static str, String)> {
        let rest = physical.strip_prefix(&self.prefix)?.strip_prefix('_')?;
        let (tag, table) = rest.split_once('_')?;
        let db = match tag {
            "pay" => PAYMENTS_DB,
            "inv" => INVENTORY_DB,
            "ord" => ORDERS_DB,
            _ => return None,
        };
        Some((db, table.to_string()))
    }

    pub fn topic(&self, logical: &str) -> String {
        format!("{}.{}", self.prefix, logical)
    }

    pub fn logical_topic<'a>(&self, physical: &'a str) -> Option<&'a str> {
        physical.strip_prefix(&self.prefix)?.strip_prefix('.')
    }

    pub fn slot(&self, logical: &str) -> String {
        format!("{}_{}", self.prefix, logical)
    }

    pub fn group(&self, logical: &str) -> String {
        format!("{}.{}", self.prefix, logical)
    }

    /// Object-store keys of this run live under this folder.
    pub fn store_folder(&self) -> String {
        self.prefix.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let n = RunNames::new("s7_ab12");
        assert_eq!(
            n.table(PAYMENTS_DB, "payments"),
            "pitfall_s7_ab12_pay_payments"
        );
        assert_eq!(
            n.logical_table("pitfall_s7_ab12_inv_processed"),
            Some((INVENTORY_DB, "processed".to_string()))
        );
        assert_eq!(n.logical_table("pitfall_s8_ab12_inv_processed"), None);
        assert_eq!(
            n.logical_table(&n.table(ORDERS_DB, "order_events")),
            Some((ORDERS_DB, "order_events".to_string()))
        );
        assert_eq!(n.logical_topic(&n.topic("payments")), Some("payments"));
        assert_eq!(n.logical_topic("other.payments"), None);
    }
}
