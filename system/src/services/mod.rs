//! The reference e-commerce services: payments → inventory reservation →
//! orders view, the archive that stores orders' attachments (invoices), and
//! the third-party carrier each reservation ships with; under `kafka-eos`,
//! the notifier that reads inventory's transactional output.

pub mod archive;
pub mod carrier;
pub mod inventory;
pub mod notifier;
pub mod orders;
pub mod payments;
