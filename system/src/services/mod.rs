//! The reference e-commerce services: payments → inventory reservation →
//! orders view, and the archive that stores orders' attachments (invoices).

pub mod archive;
pub mod inventory;
pub mod orders;
pub mod payments;
