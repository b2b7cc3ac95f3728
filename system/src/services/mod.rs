//! The reference e-commerce services: payments → inventory reservation.

pub mod inventory;
pub mod payments;
