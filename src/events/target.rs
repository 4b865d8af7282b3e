//! Where the gateway may send events: http(s) URLs only; an allow-list of host names and CIDR
//! blocks (`EVENTS_ALLOWED_HOSTS`), and addresses refused unless a listed block covers them
//! (loopback, link-local, cloud metadata, unspecified, multicast). Checked when an endpoint is
//! saved and again on every connection, against the addresses its name resolves to then, so a
//! name that later resolves elsewhere cannot reach a refused address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use futures_util::future::LocalBoxFuture;
use ipnet::IpNet;

/// The allow-list: empty means every host whose addresses are not refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    hosts: Vec<String>,
    nets: Vec<IpNet>,
}

/// A URL the gateway may send to (scheme and host checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUrl(url::Url);

impl TargetUrl {
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// Blocks refused by default: loopback, link-local (where cloud metadata services answer,
/// 169.254.169.254 and fd00:ec2::254 among them), unspecified and multicast, plus the metadata
/// addresses outside link-local (Alibaba Cloud's 100.100.100.200).
fn refused_by_default(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4 == Ipv4Addr::new(100, 100, 100, 200)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return refused_by_default(IpAddr::V4(v4));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // fe80::/10
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
        }
    }
}

impl TargetPolicy {
    /// Parses `EVENTS_ALLOWED_HOSTS`: comma-separated host names and IP addresses or CIDR blocks.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut policy = Self::default();
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if let Ok(net) = item.parse::<IpNet>() {
                policy.nets.push(net);
            } else if let Ok(ip) = item.parse::<IpAddr>() {
                policy.nets.push(IpNet::from(ip));
            } else if url::Host::parse(item).is_ok() && !item.contains('/') {
                policy.hosts.push(item.to_ascii_lowercase());
            } else {
                return Err(format!(
                    "{item:?} is not a host name, an IP address or a CIDR block"
                ));
            }
        }
        Ok(policy)
    }

    fn is_restricted(&self) -> bool {
        !self.hosts.is_empty() || !self.nets.is_empty()
    }

    fn host_listed(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    /// Whether the gateway may connect to `ip` for a URL whose host is `host`.
    pub fn allows(&self, host: &str, ip: IpAddr) -> bool {
        if self.nets.iter().any(|n| n.contains(&ip)) {
            return true;
        }
        if refused_by_default(ip) {
            return false;
        }
        !self.is_restricted() || self.host_listed(host)
    }

    /// Parses and checks an endpoint's URL: http or https, a host, and (for an IP address, or
    /// a name with an allow-list of names only) a target the policy allows. A name's addresses
    /// are checked by [`TargetPolicy::check_resolves`], and again when connecting.
    pub fn check_url(&self, raw: &str) -> Result<TargetUrl, String> {
        let url = url::Url::parse(raw.trim()).map_err(|e| format!("not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("the URL must be http:// or https://".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("the URL must not carry credentials".into());
        }
        let host = match url.host() {
            None => return Err("the URL has no host".into()),
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => None,
        };
        let name = url.host_str().unwrap_or_default();
        match host {
            Some(ip) if !self.allows(name, ip) => Err(format!(
                "the gateway may not connect to {ip} (see EVENTS_ALLOWED_HOSTS)"
            )),
            None if self.is_restricted() && !self.host_listed(name) && self.nets.is_empty() => Err(
                format!("{name} is not in the allow-list (EVENTS_ALLOWED_HOSTS)"),
            ),
            _ => Ok(TargetUrl(url)),
        }
    }
}

impl TargetPolicy {
    /// Resolves a URL's host name now and fails unless some address it resolves to is allowed
    /// (an IP address was checked by [`TargetPolicy::check_url`]). The relay checks again on
    /// every connection.
    pub async fn check_resolves(&self, url: &TargetUrl) -> Result<(), String> {
        let Some(url::Host::Domain(name)) = url.0.host() else {
            return Ok(());
        };
        let port = url.0.port_or_known_default().unwrap_or(443);
        let found: Vec<SocketAddr> = tokio::net::lookup_host((name, port))
            .await
            .map_err(|e| format!("{name} does not resolve: {e}"))?
            .collect();
        if found.iter().any(|a| self.allows(name, a.ip())) {
            Ok(())
        } else {
            Err(format!(
                "{name} resolves only to addresses the gateway may not connect to (see EVENTS_ALLOWED_HOSTS)"
            ))
        }
    }
}

/// awc's resolver for the relay: resolves, then keeps only the addresses the policy allows; none
/// left is a connect error, so nothing is sent.
#[derive(Clone)]
pub struct GuardedResolver(pub Arc<TargetPolicy>);

impl actix_tls::connect::Resolve for GuardedResolver {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> LocalBoxFuture<'a, Result<Vec<SocketAddr>, Box<dyn std::error::Error>>> {
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| self.0.allows(host, a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(format!(
                    "{host} resolves only to addresses the gateway may not connect to ({})",
                    found
                        .iter()
                        .map(|a| a.ip().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
                .into());
            }
            Ok(allowed)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_https_urls_with_a_host_are_accepted() {
        let p = TargetPolicy::default();
        assert!(p.check_url("https://hooks.example.com/axe").is_ok());
        assert!(p.check_url("http://10.0.0.5:8080/in").is_ok());
        for bad in [
            "ftp://example.com/",
            "file:///etc/passwd",
            "https://user:pw@example.com/",
            "not a url",
        ] {
            assert!(p.check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn metadata_link_local_and_loopback_are_refused_by_default() {
        let p = TargetPolicy::default();
        for bad in [
            "http://169.254.169.254/latest/meta-data",
            "http://[fe80::1]/",
            "http://127.0.0.1:9000/",
            "http://[::1]/",
            "http://0.0.0.0/",
            "http://100.100.100.200/",
            "http://[::ffff:169.254.169.254]/",
        ] {
            assert!(p.check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_listed_block_allows_even_a_refused_address_and_restricts_the_rest() {
        let p = TargetPolicy::parse("127.0.0.1/32, hooks.example.com").expect("policy");
        assert!(p.check_url("http://127.0.0.1:9000/").is_ok());
        assert!(p.check_url("https://hooks.example.com/x").is_ok());
        assert!(p.check_url("http://10.0.0.5/").is_err());
        assert!(!p.allows("hooks.example.com", "169.254.169.254".parse().expect("ip")));
        assert!(p.allows("hooks.example.com", "203.0.113.7".parse().expect("ip")));
        assert!(!p.allows("other.example.com", "203.0.113.7".parse().expect("ip")));
        assert!(TargetPolicy::parse("10.0.0.0/33").is_err());
    }
}
