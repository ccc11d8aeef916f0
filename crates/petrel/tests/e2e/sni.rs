//! Several certificates chosen by SNI (issue 19, item 4): `[[tls.certificate]]` entries for
//! mail.one.test and *.two.test. OpenSSL's s_client, with -servername and the CA file of one
//! certificate (and -verify_return_error), completes a handshake only when petrel served that
//! certificate: on STARTTLS (port 25), on implicit TLS (465) and on HTTPS (`[http] tls`, where
//! curl also fetches a page for each name), a name nobody has gets the first certificate, a
//! SIGHUP with a new certificate file serves the new one, and `check-config` names each
//! certificate and warns of one that expires within 14 days.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::harness::{Petrel, Scratch};

/// Days since 1970-01-01 as (year, month, day) (H. Hinnant's civil_from_days).
fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        i32::try_from(year).unwrap(),
        u8::try_from(month).unwrap(),
        u8::try_from(day).unwrap(),
    )
}

/// A self-signed certificate for `names` in `dir` (`stem`.pem and `stem`.key), valid until
/// `days` from today when given; the certificate's path.
fn certificate(dir: &Path, stem: &str, names: &[&str], days: Option<i64>) -> PathBuf {
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    if let Some(days) = days {
        let today = i64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs()
                / 86_400,
        )
        .unwrap();
        let (year, month, day) = civil_from_days(today + days);
        params.not_after = rcgen::date_time_ymd(year, month, day);
    }
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let path = dir.join(format!("{stem}.pem"));
    std::fs::write(&path, cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{stem}.key")), key.serialize_pem()).unwrap();
    path
}

/// Whether s_client completes a verified handshake asking for `name` and trusting `ca`.
fn handshake(address: std::net::SocketAddr, starttls: bool, name: &str, ca: &Path) -> bool {
    let mut command = Command::new("openssl");
    command.arg("s_client");
    if starttls {
        command.args(["-starttls", "smtp"]);
    }
    let output = command
        .args([
            "-connect",
            &address.to_string(),
            "-servername",
            name,
            "-CAfile",
        ])
        .arg(ca)
        .args(["-verify_return_error", "-brief"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    text.contains("Verification: OK")
}

/// `petrel check-config --config PATH`.
fn check_config(path: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_petrel"))
        .args(["check-config", "--config"])
        .arg(path)
        .output()
        .unwrap()
}

#[test]
fn sni_chooses_the_certificate_by_name_and_reloads() {
    let dir = Scratch::new("sni");
    let one = certificate(&dir.0, "one", &["mail.one.test"], None);
    let two = certificate(&dir.0, "two", &["*.two.test"], None);
    let tls = |one: &Path| {
        format!(
            "[[tls.certificate]]\nnames = [\"mail.one.test\"]\ncertificate = \"{}\"\nkey = \"{}\"\n\n[[tls.certificate]]\nnames = [\"*.two.test\"]\ncertificate = \"{}\"\nkey = \"{}\"\n",
            one.display(),
            one.with_extension("key").display(),
            two.display(),
            two.with_extension("key").display()
        )
    };
    let petrel = Petrel::start(
        &dir.0,
        &format!(
            "[[listener]]\naddress = \"127.0.0.1:0\"\nprotocol = \"submissions\"\n\n[http]\naddress = \"127.0.0.1:0\"\ntls = true\n\n{}",
            tls(&one)
        ),
    );
    let smtp = petrel.address;
    let submissions = petrel.listener("submissions");
    let https = petrel.listener("https");
    for (address, starttls) in [(smtp, true), (submissions, false), (https, false)] {
        assert!(handshake(address, starttls, "mail.one.test", &one));
        assert!(handshake(address, starttls, "smtp.two.test", &two));
        assert!(
            !handshake(address, starttls, "mail.one.test", &two),
            "mail.one.test must not get the *.two.test certificate"
        );
        assert!(
            handshake(address, starttls, "unknown.test", &one),
            "another name gets the first certificate"
        );
    }
    // The web pages over HTTPS, as curl sees them for each name.
    for (name, ca) in [("mail.one.test", &one), ("www.two.test", &two)] {
        let output = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--resolve"])
            .arg(format!("{name}:{}:127.0.0.1", https.port()))
            .arg("--cacert")
            .arg(ca)
            .arg(format!("https://{name}:{}/codes/", https.port()))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "200",
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // A new certificate for mail.one.test, taken on SIGHUP.
    let renewed = certificate(&dir.0, "renewed", &["mail.one.test"], Some(7));
    let config = std::fs::read_to_string(&petrel.config_path).unwrap();
    std::fs::write(
        &petrel.config_path,
        config.replace(&tls(&one), &tls(&renewed)),
    )
    .unwrap();
    petrel.signal("HUP");
    crate::harness::wait_until("the new certificate", || {
        handshake(smtp, true, "mail.one.test", &renewed)
    });
    assert!(!handshake(smtp, true, "mail.one.test", &one));
    assert!(handshake(https, false, "mail.one.test", &renewed));
    // check-config names each certificate and warns of the one expiring in 7 days.
    let output = check_config(&petrel.config_path);
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        said.contains(&format!(
            "tls.certificate = {} for mail.one.test (warning: expires within 14 days)",
            renewed.display()
        )) && said.contains(&format!(
            "tls.certificate = {} for *.two.test\n",
            two.display()
        )),
        "{said}"
    );
    // A certificate that does not cover its name is refused by check-config.
    std::fs::write(
        &petrel.config_path,
        config.replace("names = [\"*.two.test\"]", "names = [\"*.three.test\"]"),
    )
    .unwrap();
    let output = check_config(&petrel.config_path);
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && said.contains("*.three.test"),
        "{said}"
    );
    // A self-signed certificate from `openssl req -x509` (marked as a CA) serves; check-config
    // warns that its chain could not be checked instead of refusing it.
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=mx.test",
            "-addext",
            "subjectAltName=DNS:mx.test",
            "-keyout",
        ])
        .arg(dir.0.join("ca.key"))
        .arg("-out")
        .arg(dir.0.join("ca.pem"))
        .output()
        .unwrap();
    assert!(made.status.success());
    let lone = format!(
        "[tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n",
        dir.0.join("ca.pem").display(),
        dir.0.join("ca.key").display()
    );
    std::fs::write(&petrel.config_path, config.replace(&tls(&one), &lone)).unwrap();
    let output = check_config(&petrel.config_path);
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && said.contains("(warning: its chain could not be checked"),
        "{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `[tls] directory`: one directory per host name with fullchain.pem and privkey.pem (as
/// certbot's live/); each name gets its own certificate, and a host added later is served
/// after a SIGHUP.
#[test]
fn a_certificate_directory_serves_each_host_name() {
    let dir = Scratch::new("sni-directory");
    let live = dir.0.join("live");
    let add = |name: &str| {
        let host = live.join(name);
        std::fs::create_dir_all(&host).unwrap();
        let pem = certificate(&host, "cert", &[name], None);
        std::fs::rename(&pem, host.join("fullchain.pem")).unwrap();
        std::fs::rename(host.join("cert.key"), host.join("privkey.pem")).unwrap();
        host.join("fullchain.pem")
    };
    let five = add("mail.five.test");
    let six = add("mail.six.test");
    let petrel = Petrel::start(
        &dir.0,
        &format!("[tls]\ndirectory = \"{}\"\n", live.display()),
    );
    assert!(handshake(petrel.address, true, "mail.five.test", &five));
    assert!(handshake(petrel.address, true, "mail.six.test", &six));
    assert!(!handshake(petrel.address, true, "mail.six.test", &five));
    let seven = add("mail.seven.test");
    petrel.signal("HUP");
    crate::harness::wait_until("the new host's certificate", || {
        handshake(petrel.address, true, "mail.seven.test", &seven)
    });
}
