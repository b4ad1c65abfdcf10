//! Where a webhook may be sent. Deliveries go out from inside the retailer's network, so a
//! URL that names (or resolves to) a private, loopback, link-local or otherwise internal
//! address would let whoever holds the admin key probe that network: such addresses are
//! refused unless an operator allowed their range (`--webhook-allow-cidr`). The host is
//! resolved again at every attempt and the delivery connects to the address that was
//! checked, so a DNS answer that changes later cannot point it inside.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use reqwest::Url;

/// Longest webhook URL.
pub const URL_LEN_MAX: usize = 2_048;

/// A checked `http(s)` URL with a host.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: Url,
    host: String,
    port: u16,
}

impl Target {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.len() > URL_LEN_MAX {
            return Err(format!("url is longer than {URL_LEN_MAX} characters"));
        }
        let url = Url::parse(raw).map_err(|err| format!("url is not a URL: {err}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("url must be http or https".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("url must not carry credentials; sign with the secret instead".into());
        }
        let host = url
            .host_str()
            .filter(|host| !host.is_empty())
            .ok_or("url has no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = url.port_or_known_default().ok_or("url has no port")?;
        Ok(Self { url, host, port })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// The addresses the host resolves to now, each allowed by `policy`; an error names
    /// the first that is not.
    pub async fn resolve(&self, policy: &AddressPolicy) -> Result<Vec<SocketAddr>, String> {
        let addresses: Vec<SocketAddr> = match self.host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, self.port)],
            Err(_) => tokio::net::lookup_host((self.host.as_str(), self.port))
                .await
                .map_err(|err| format!("{} does not resolve: {err}", self.host))?
                .collect(),
        };
        if addresses.is_empty() {
            return Err(format!("{} resolves to no address", self.host));
        }
        if let Some(refused) = addresses.iter().find(|a| !policy.allows(a.ip())) {
            return Err(format!(
                "{} resolves to {}, an internal address; allow its range with --webhook-allow-cidr",
                self.host,
                refused.ip()
            ));
        }
        Ok(addresses)
    }
}

/// Which addresses deliveries may reach: public ones, and the ranges an operator allowed.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    pub allowed: Vec<IpNet>,
}

impl AddressPolicy {
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.allowed.iter().any(|net| net.contains(&ip)) || is_public(ip)
    }
}

/// Not loopback, private, link-local, shared (CGNAT), unspecified, broadcast, multicast,
/// documentation or unique-local: an address on the public internet.
fn is_public(ip: IpAddr) -> bool {
    const INTERNAL: &[&str] = &[
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/3",
        "::/128",
        "::1/128",
        "64:ff9b::/96",
        "100::/64",
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    ];
    !INTERNAL.iter().any(|range| {
        range
            .parse::<IpNet>()
            .is_ok_and(|net: IpNet| net.contains(&ip))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn internal_addresses_need_an_allowed_range() {
        let closed = AddressPolicy::default();
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!closed.allows(ip(internal)), "{internal}");
        }
        assert!(closed.allows(ip("93.184.216.34")));
        assert!(closed.allows(ip("2606:4700::1111")));
        let open = AddressPolicy {
            allowed: vec!["127.0.0.1/32".parse().expect("cidr")],
        };
        assert!(open.allows(ip("127.0.0.1")));
        assert!(!open.allows(ip("127.0.0.2")));
    }

    #[test]
    fn urls_are_http_with_a_host_and_no_credentials() {
        assert!(Target::parse("https://hooks.example.com/a?b=c").is_ok());
        assert_eq!(
            Target::parse("http://[::1]:9000/x").expect("v6").host(),
            "::1"
        );
        for bad in [
            "ftp://example.com/",
            "https://user:pw@example.com/",
            "not a url",
            "http://",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        assert!(Target::parse(&format!("https://e.com/{}", "a".repeat(URL_LEN_MAX))).is_err());
    }

    #[tokio::test]
    async fn a_name_is_checked_by_what_it_resolves_to() {
        let target = Target::parse("http://localhost:9/").expect("url");
        assert!(target.resolve(&AddressPolicy::default()).await.is_err());
        let loopback = AddressPolicy {
            allowed: vec![
                "127.0.0.0/8".parse().expect("cidr"),
                "::1/128".parse().expect("cidr"),
            ],
        };
        assert!(target.resolve(&loopback).await.is_ok());
    }
}
