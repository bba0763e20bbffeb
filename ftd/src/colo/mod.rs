//! COLO specifics: what a domain must look like to be replicated ([`layout`]).
//! The QMP plans that wire and unwire COLO land next to it.

pub mod layout;
pub mod secondary;
