//! The reference e-commerce services: payments → inventory reservation, and
//! the archive that stores orders' attachments (invoices).

pub mod archive;
pub mod inventory;
pub mod payments;
