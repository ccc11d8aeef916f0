//! Milters (Sendmail's milter protocol, version 6; issue 16, item 5): the codec (`codec`) and
//! the client that talks to one milter for one SMTP session (`client`).

pub mod apply;
pub mod client;
pub mod codec;
pub mod session;
