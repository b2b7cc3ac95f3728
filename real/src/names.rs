//! Physical names of one real-mode run. Every database, table, topic, slot,
//! consumer group and object-store prefix carries the run's prefix, so
//! concurrent or leftover runs never collide and cleanup can find everything.
//! Each logical DB gets a database of its own on the server
//! ([`RunNames::database`]), as separately deployed services would have.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunNames {
    prefix: String,
    /// The run's logical DBs; a DB's tables are tagged by its place here.
    dbs: Vec<String>,
}

/// The prefix every run's names start with.
pub const PREFIX: &str = "pitfall_";

impl RunNames {
    /// `tag` must be short lowercase alphanumerics (the seed and a nonce);
    /// `dbs` are the system's logical DBs.
    pub fn new(tag: &str, dbs: &[String]) -> Self {
        debug_assert!(tag
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
        RunNames {
            prefix: format!("{PREFIX}{tag}"),
            dbs: dbs.to_vec(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn db_tag(&self, db: &str) -> String {
        let i = self
            .dbs
            .iter()
            .position(|d| d == db)
            .unwrap_or_else(|| panic!("unknown logical database {db}"));
        format!("d{i}")
    }

    /// The server-side database (Postgres database, MySQL schema) behind a
    /// logical DB.
    pub fn database(&self, db: &str) -> String {
        format!("{}_{}", self.prefix, self.db_tag(db))
    }

    /// The logical DB behind a server-side database of this run.
    pub fn logical_database(&self, physical: &str) -> Option<&str> {
        let tag = physical.strip_prefix(&self.prefix)?.strip_prefix("_d")?;
        let i: usize = tag.parse().ok()?;
        self.dbs.get(i).map(String::as_str)
    }

    /// The table behind a logical DB's table (inside [`Self::database`]).
    pub fn table(&self, db: &str, table: &str) -> String {
        format!("{}_{}_{}", self.prefix, self.db_tag(db), table)
    }

    /// The logical (db, table) of a physical table name of this run.
    pub fn logical_table(&self, physical: &str) -> Option<(String, String)> {
        let rest = physical.strip_prefix(&self.prefix)?.strip_prefix('_')?;
        let (tag, table) = rest.split_once('_')?;
        let i: usize = tag.strip_prefix('d')?.parse().ok()?;
        Some((self.dbs.get(i)?.clone(), table.to_string()))
    }

    pub fn topic(&self, logical: &str) -> String {
        format!("{}.{}", self.prefix, logical)
    }

    pub fn logical_topic<'a>(&self, physical: &'a str) -> Option<&'a str> {
        physical.strip_prefix(&self.prefix)?.strip_prefix('.')
    }

    /// A logical DB's replication slot. Postgres slot names are global to
    /// the server, so the name carries the DB's tag.
    pub fn slot(&self, db: &str, logical: &str) -> String {
        format!("{}_{}_{}", self.prefix, self.db_tag(db), logical)
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
        let dbs = ["payments-db".to_string(), "inventory-db".to_string()];
        let n = RunNames::new("s7_ab12", &dbs);
        assert_eq!(
            n.table("payments-db", "payments"),
            "pitfall_s7_ab12_d0_payments"
        );
        assert_eq!(
            n.logical_table("pitfall_s7_ab12_d1_processed"),
            Some(("inventory-db".to_string(), "processed".to_string()))
        );
        assert_eq!(n.logical_table("pitfall_s8_ab12_d1_processed"), None);
        assert_eq!(n.logical_table("pitfall_s7_ab12_d2_processed"), None);
        assert_eq!(
            n.logical_table(&n.table("inventory-db", "order_events")),
            Some(("inventory-db".to_string(), "order_events".to_string()))
        );
        assert_eq!(n.logical_topic(&n.topic("payments")), Some("payments"));
        assert_eq!(n.database("inventory-db"), "pitfall_s7_ab12_d1");
        assert_eq!(
            n.logical_database(&n.database("inventory-db")),
            Some("inventory-db")
        );
        assert_eq!(n.logical_database("pitfall_s7_ab12_d2"), None);
        assert_eq!(n.logical_database("pitfall_s7_ab12"), None);
        assert_ne!(
            n.slot("payments-db", "history"),
            n.slot("inventory-db", "history")
        );
        assert_eq!(n.logical_topic("other.payments"), None);
    }
}
