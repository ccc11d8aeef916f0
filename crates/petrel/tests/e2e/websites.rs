//! Real web servers for the tests that fetch over HTTPS (MTA-STS policies): a test CA made with
//! rcgen whose certificates petrel trusts through `delivery.ca_file`, and Debian's nginx
//! started on a loopback address of the test's own (port 443: tests run as root), serving a
//! directory per host name, ended by PID when dropped.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// A certificate authority for one test.
pub struct TestCa {
    /// The CA certificate (PEM), for `ca_file`.
    pub cert_path: PathBuf,
    cert: rcgen::Certificate,
    key: KeyPair,
    dir: PathBuf,
}

impl TestCa {
    pub fn new(dir: &Path) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "petrel test CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        let cert_path = dir.join("test-ca.pem");
        std::fs::write(&cert_path, cert.pem()).unwrap();
        TestCa {
            cert_path,
            cert,
            key,
            dir: dir.to_path_buf(),
        }
    }

    /// A server certificate for `names`, signed by this CA: the paths of its PEM files
    /// (certificate, key), named after `label`.
    pub fn issue(&self, label: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let cert_path = self.dir.join(format!("{label}.crt"));
        let key_path = self.dir.join(format!("{label}.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }
}

/// A server certificate from a CA, for DANE: the chain file (leaf, then the CA), the key,
/// the leaf's SubjectPublicKeyInfo and the CA certificate (DER).
pub struct Issued {
    pub chain: PathBuf,
    pub key: PathBuf,
    pub spki: Vec<u8>,
    pub ca_der: Vec<u8>,
}

impl TestCa {
    /// As `issue`, with the chain file and the DER parts DANE records are made of.
    pub fn issue_chain(&self, label: &str, names: &[&str]) -> Issued {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let chain = self.dir.join(format!("{label}-chain.crt"));
        let key_path = self.dir.join(format!("{label}.key"));
        std::fs::write(&chain, cert.pem() + &self.cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        Issued {
            chain,
            key: key_path,
            spki: key.public_key_der(),
            ca_der: self.cert.der().to_vec(),
        }
    }
}

/// One nginx, HTTPS on `address`:443; `www/<host>/` is the document root of each host name.
pub struct Nginx {
    child: Option<Child>,
    pub www: PathBuf,
}

impl Nginx {
    /// Starts nginx with `certificate` for every host; `extra_servers` are more `server`
    /// blocks (a redirect, say), in nginx's syntax, `{address}` standing for the address.
    pub fn start(
        dir: &Path,
        address: Ipv4Addr,
        certificate: &(PathBuf, PathBuf),
        extra_servers: &str,
    ) -> Nginx {
        let www = dir.join("www");
        std::fs::create_dir_all(&www).unwrap();
        let temp = dir.join("nginx-temp");
        std::fs::create_dir_all(&temp).unwrap();
        let (cert, key) = certificate;
        let config = format!(
            "daemon off;\nmaster_process off;\npid {dir}/nginx.pid;\nerror_log {dir}/nginx-error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log {dir}/nginx-access.log;\n  client_body_temp_path {temp}/body;\n  proxy_temp_path {temp}/proxy;\n  fastcgi_temp_path {temp}/fastcgi;\n  uwsgi_temp_path {temp}/uwsgi;\n  scgi_temp_path {temp}/scgi;\n  types {{ text/plain txt; }}\n  default_type application/octet-stream;\n  ssl_certificate {cert};\n  ssl_certificate_key {key};\n\
             server {{\n    listen {address}:443 ssl default_server;\n    root {www}/$host;\n  }}\n{extra}\n}}\n",
            dir = dir.display(),
            temp = temp.display(),
            cert = cert.display(),
            key = key.display(),
            www = www.display(),
            extra = extra_servers.replace("{address}", &address.to_string()),
        );
        let config_path = dir.join("nginx.conf");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new("nginx")
            .arg("-c")
            .arg(&config_path)
            .arg("-p")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx (Debian's nginx package, installed by .ci/run)");
        let target = SocketAddr::from((address, 443));
        crate::harness::wait_until("nginx to listen", || {
            TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_ok()
        });
        Nginx {
            child: Some(child),
            www,
        }
    }

    /// Serves `text` at `https://<host><path>`.
    pub fn serve(&self, host: &str, path: &str, text: &str) {
        let file = self.www.join(host).join(path.trim_start_matches('/'));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }

    /// Stops nginx (by its PID) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}
