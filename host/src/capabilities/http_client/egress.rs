//! Where a plugin's outbound requests may go.
//!
//! Two checks, both on every hop of a redirect chain: the host name against the manifest's grant,
//! and every address the name resolves to against the internal ranges (loopback, private,
//! link-local with the cloud metadata address, carrier-grade NAT, multicast, reserved...). The
//! resolver hands reqwest only the addresses it checked, so the connection goes to a checked
//! address and a DNS answer that changes between check and connect (rebinding) can't slip through.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The connection was refused by policy.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct EgressDenied(pub String);

/// Whether `ip` is an internal address a plugin must not reach without the operator's permission.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal_v4(v4);
            }
            let seg = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local (fc00::/7), including fd00:ec2::254
                || (seg[0] & 0xffc0) == 0xfe80 // link-local
                || (seg[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (seg[0] == 0x64 && seg[1] == 0xff9b) // NAT64 can reach IPv4 internals
                || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
                || (seg[0] == 0x2002) // 6to4 embeds an IPv4 address
                || v6.to_ipv4().is_some_and(|v4| seg[0..6] == [0; 6] && is_internal_v4(v4)) // IPv4-compatible
        }
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254.0.0/16, which holds 169.254.169.254
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0 // "this network"
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // carrier-grade NAT 100.64.0.0/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18.0.0/15
        || o[0] >= 240 // reserved
}

/// Which addresses a plugin may connect to: anything but the internal ranges, plus the internal
/// networks the policy lists for it (`[policy.overrides.<id>] internal-networks`).
#[derive(Debug, Clone, Default)]
pub struct AddressRules {
    allowed_internal: Arc<[IpNet]>,
}

impl AddressRules {
    pub fn new(allowed_internal: &[IpNet]) -> Self {
        Self {
            allowed_internal: allowed_internal.into(),
        }
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        !is_internal(ip) || self.allowed_internal.iter().any(|net| net.contains(&ip))
    }

    pub fn check(&self, ip: IpAddr) -> Result<(), EgressDenied> {
        if self.allows(ip) {
            Ok(())
        } else {
            Err(EgressDenied(format!(
                "{ip} is an internal address, not reachable from plugins{}",
                if self.allowed_internal.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (this plugin may reach {} only)",
                        self.allowed_internal
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            )))
        }
    }
}

/// How names are looked up: the system's resolver, or the DNS servers `[egress] nameservers`
/// names (queried directly, without `/etc/hosts`).
#[derive(Clone, Default)]
pub enum Lookup {
    #[default]
    System,
    Nameservers(Arc<hickory_resolver::TokioResolver>),
}

impl std::fmt::Debug for Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::System => f.write_str("System"),
            Self::Nameservers(_) => f.write_str("Nameservers"),
        }
    }
}

impl Lookup {
    /// A resolver querying `servers` (UDP, then TCP on truncation), without a cache, so every
    /// request is checked against a fresh answer.
    pub fn nameservers(servers: &[SocketAddr]) -> anyhow::Result<Self> {
        use hickory_resolver::config::{
            ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
        };
        let name_servers = servers
            .iter()
            .map(|addr| {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
            })
            .collect();
        let mut builder = hickory_resolver::Resolver::builder_with_config(
            ResolverConfig::from_name_servers(name_servers),
            hickory_resolver::net::runtime::TokioRuntimeProvider::default(),
        );
        let options = builder.options_mut();
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        options.use_hosts_file = ResolveHosts::Never;
        options.cache_size = 0;
        options.timeout = std::time::Duration::from_secs(3);
        options.attempts = 2;
        Ok(Self::Nameservers(Arc::new(builder.build()?)))
    }

    async fn resolve(
        &self,
        host: &str,
    ) -> Result<Vec<IpAddr>, Box<dyn std::error::Error + Send + Sync>> {
        match self {
            Self::System => Ok(tokio::net::lookup_host((host, 0))
                .await?
                .map(|a| a.ip())
                .collect()),
            Self::Nameservers(resolver) => {
                let fqdn = format!("{}.", host.trim_end_matches('.'));
                Ok(resolver.lookup_ip(fqdn.as_str()).await?.iter().collect())
            }
        }
    }
}

/// A DNS resolver that returns only addresses a plugin may connect to.
#[derive(Debug, Clone)]
pub struct CheckedResolver {
    pub addresses: AddressRules,
    pub lookup: Lookup,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let rules = self.addresses.clone();
        let lookup = self.lookup.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let resolved = lookup.resolve(&host).await?;
            let allowed: Vec<SocketAddr> = resolved
                .iter()
                .copied()
                .filter(|ip| rules.allows(*ip))
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            if allowed.is_empty() {
                let shown: Vec<String> = resolved.iter().map(ToString::to_string).collect();
                return Err(Box::new(EgressDenied(format!(
                    "{host} resolves to {} — internal addresses are not reachable from plugins",
                    if shown.is_empty() {
                        "nothing".to_string()
                    } else {
                        shown.join(", ")
                    }
                )))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_ranges() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
        ] {
            assert!(
                is_internal(internal.parse().unwrap()),
                "{internal} is internal"
            );
        }
        for public in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "8.8.8.8",
        ] {
            assert!(!is_internal(public.parse().unwrap()), "{public} is public");
        }
    }

    #[test]
    fn the_policy_can_open_named_internal_networks() {
        let rules = AddressRules::new(&["127.0.0.1/32".parse().unwrap()]);
        assert!(rules.allows("127.0.0.1".parse().unwrap()));
        assert!(rules.allows("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!rules.allows("127.0.0.2".parse().unwrap()));
        assert!(!rules.allows("169.254.169.254".parse().unwrap()));
        assert!(rules.allows("1.1.1.1".parse().unwrap()));
        let err = rules.check("10.0.0.1".parse().unwrap()).unwrap_err();
        assert!(err.0.contains("may reach 127.0.0.1/32 only"), "{err}");
        assert!(!AddressRules::default().allows("127.0.0.1".parse().unwrap()));
    }
}
