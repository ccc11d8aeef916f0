//! The resolver against a real DNS server on loopback (the test responder): every kind of MX
//! answer the routing rules tell apart (RFC 7505 §3, RFC 5321 §5.1), and TXT records.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use petrel_dns::responder::{Responder, ZoneEntry};
use petrel_dns::{AddressAnswer, MxAnswer, MxRecord, Resolver};

fn zone() -> Vec<ZoneEntry> {
    vec![
        ZoneEntry::Mx("nullmx.test", 0, "."),
        ZoneEntry::Mx("mx.test", 10, "mail.mx.test"),
        ZoneEntry::A("mail.mx.test", "127.0.0.1".parse().unwrap()),
        ZoneEntry::A("aonly.test", "127.0.0.2".parse().unwrap()),
        ZoneEntry::Mx("mixed.test", 0, "."),
        ZoneEntry::Mx("mixed.test", 20, "mail.mx.test"),
        ZoneEntry::ServFail("servfail.test"),
        ZoneEntry::Txt("_mta-sts.mx.test".into(), "v=STSv1; id=20261207;".into()),
        ZoneEntry::Txt("long.mx.test".into(), "x".repeat(300)),
        ZoneEntry::Ptr("2.2.0.192.in-addr.arpa", "Mail.MX.test"),
    ]
}

#[tokio::test]
async fn typed_answers() {
    let responder = Responder::start(zone()).unwrap();
    let resolver = Resolver::new(&[responder.address], Duration::from_secs(2)).unwrap();
    assert_eq!(resolver.mx("nullmx.test").await, Ok(MxAnswer::NullMx));
    assert_eq!(
        resolver.mx("MX.test").await,
        Ok(MxAnswer::Records(vec![MxRecord {
            preference: 10,
            exchange: "mail.mx.test".into()
        }]))
    );
    assert_eq!(resolver.mx("aonly.test").await, Ok(MxAnswer::NoMx));
    assert_eq!(
        resolver.mx("nonexistent.test").await,
        Ok(MxAnswer::NoSuchDomain)
    );
    let Ok(MxAnswer::Records(mixed)) = resolver.mx("mixed.test").await else {
        panic!("mixed")
    };
    assert_eq!(mixed.len(), 2);
    assert!(
        resolver.mx("servfail.test").await.is_err(),
        "SERVFAIL is a temporary failure"
    );
    assert_eq!(
        resolver.addresses("aonly.test").await,
        Ok(AddressAnswer::Addresses(vec!["127.0.0.2".parse().unwrap()]))
    );
    assert_eq!(
        resolver.addresses("gone.test").await,
        Ok(AddressAnswer::NoSuchDomain)
    );
    // TXT: one value per record, character-strings joined; none for a missing name or type.
    assert_eq!(
        resolver.txt("_mta-sts.mx.test").await,
        Ok(vec!["v=STSv1; id=20261207;".to_owned()])
    );
    assert_eq!(
        resolver.txt("long.mx.test").await,
        Ok(vec!["x".repeat(300)])
    );
    assert_eq!(resolver.txt("gone.test").await, Ok(Vec::new()));
    assert_eq!(resolver.txt("aonly.test").await, Ok(Vec::new()));
    assert!(resolver.txt("servfail.test").await.is_err());
    // PTR: the names of an address; none for an address without one. (Loopback addresses
    // are "localhost" without asking: hickory answers those itself, RFC 6761.)
    assert_eq!(
        resolver.ptr("192.0.2.2".parse().unwrap()).await,
        Ok(vec!["mail.mx.test".to_owned()])
    );
    assert_eq!(
        resolver.ptr("192.0.2.3".parse().unwrap()).await,
        Ok(Vec::new())
    );
}
